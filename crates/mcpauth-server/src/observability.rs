//! What operators see: the request layer (request id, one log line and metrics per request),
//! the Prometheus recorder and its `/metrics` listener, the readiness probe and the log format.
//!
//! Nothing here logs a URI, a query string, a header value (other than the request id) or a
//! body: a request's route template (`/api/auth/mcp/token`, never the path with its query) and
//! status are all a log line says about it, so codes, tokens, passwords and cookies cannot
//! reach the logs or the metrics (SECURITY O1).

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcpauth::McpAuth;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

/// The request id header: accepted from the client when well-formed, generated otherwise, and
/// echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long `/readyz` waits for the database (and Redis) before answering 503.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Latency buckets of `mcpauth_http_request_duration_seconds`, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A client's request id is kept only when it is short and made of characters that cannot
/// break a log line or smuggle anything: otherwise the server makes its own.
fn acceptable_request_id(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(id)
}

/// The request layer (`axum::middleware::from_fn`): request id, a `request` span around the
/// handler (so every line logged while handling carries the request id and route), one
/// `request` line at the end with status and latency, and the request metrics
/// `mcpauth_http_requests_total{method, route, status}` and
/// `mcpauth_http_request_duration_seconds{method, route}`. Routes are templates from the
/// router (`MatchedPath`); a path no route matched is `unmatched`, so clients cannot grow the
/// label set.
pub async fn track_requests(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(acceptable_request_id)
        .map(str::to_owned)
        .unwrap_or_else(mcpauth_core::secret::random_id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    });
    metrics::counter!(
        "mcpauth_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "mcpauth_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(latency.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The process's Prometheus recorder, installed by the first caller. The `metrics` macros
/// record into one global recorder; a process that builds several [`Application`]s (tests)
/// shares it.
///
/// [`Application`]: crate::Application
pub fn prometheus() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("mcpauth_http_request_duration_seconds".to_owned()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    // Two racing first callers: the loser's install fails above, so this keeps the winner.
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Reports the database pools' connections: `(pool, open, idle)` for each pool.
pub type PoolUsage = Arc<dyn Fn() -> Vec<(&'static str, u32, usize)> + Send + Sync>;

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    pools: PoolUsage,
}

/// The `/metrics` router of the metrics listener (never merged into the public router).
pub fn metrics_router(handle: PrometheusHandle, pools: PoolUsage) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(MetricsState { handle, pools })
}

async fn render_metrics(State(state): State<MetricsState>) -> Response {
    for (pool, open, idle) in (state.pools)() {
        let idle_u32 = u32::try_from(idle).unwrap_or(u32::MAX);
        metrics::gauge!("mcpauth_db_connections_open", "pool" => pool).set(f64::from(open));
        metrics::gauge!("mcpauth_db_connections_in_use", "pool" => pool)
            .set(f64::from(open.saturating_sub(idle_u32)));
    }
    state.handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}

/// A readiness check besides the database's, e.g. Redis when it holds the rate limits.
pub type ReadinessCheck = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// `/readyz`: 200 `ready` when the database answers a query (and every extra check passes)
/// within [`READINESS_TIMEOUT`]; 503 naming what failed otherwise. `/healthz` stays a pure
/// liveness answer that touches nothing.
pub async fn readiness(auth: McpAuth, extra: Option<ReadinessCheck>) -> Response {
    let database =
        match tokio::time::timeout(READINESS_TIMEOUT, auth.store().revocation_epoch()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("database: {error}")),
            Err(_) => Err(format!("database: no answer within {READINESS_TIMEOUT:?}")),
        };
    let extra = match (&database, extra) {
        (Ok(()), Some(check)) => match tokio::time::timeout(READINESS_TIMEOUT, check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {READINESS_TIMEOUT:?}")),
        },
        _ => Ok(()),
    };
    match database.and(extra) {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}"),
            )
                .into_response()
        }
    }
}

/// `log_format`: human-readable lines (`text`), or one JSON object a line (`json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The format [`init_logging`] installed, once it has.
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the process's log subscriber (standard error, lines gathered in memory; `RUST_LOG`
/// overrides the levels); the first call wins.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,rmcp=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BufferedStderr);
    // `try_init`: a second call (tests, a command that loads settings twice) keeps the first.
    let installed = match format {
        LogFormat::Text => builder.try_init().is_ok(),
        // Event fields at the top level; the request span's fields (request id, route) under
        // "span", so every line of a request can be found by its id.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
    };
    if installed {
        let _ = LOG_FORMAT.set(format);
        LOG_LINES.start_flushing();
    }
}

/// Writes out the log lines waiting in memory: before the start banner, before the process
/// exits, and before a panic's message.
pub fn flush_logs() {
    LOG_LINES.flush();
}

/// How long a log line may wait in memory before it goes to standard error.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// How many bytes of log lines wait in memory at most: the line that fills the buffer writes
/// it out.
const LOG_BUFFER_LIMIT: usize = 64 * 1024;

/// Log lines on their way to standard error. A write system call per line (two a request: the
/// request line and, for a grant, its security event) was a tenth of the token endpoint's CPU
/// under load; lines now gather here and go out together, at most [`LOG_FLUSH_INTERVAL`]
/// after the first of them, in the order they were logged. A thread waits for the first line
/// (an idle server does not wake up) and writes them out.
struct LogLines {
    buffer: Mutex<Vec<u8>>,
    filled: Condvar,
    flushing: Once,
}

static LOG_LINES: LogLines = LogLines {
    buffer: Mutex::new(Vec::new()),
    filled: Condvar::new(),
    flushing: Once::new(),
};

impl LogLines {
    fn append(&self, line: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.is_empty() {
            self.filled.notify_one();
        }
        buffer.extend_from_slice(line);
        if buffer.len() >= LOG_BUFFER_LIMIT {
            write_out(&mut buffer);
        }
    }

    fn flush(&self) {
        write_out(&mut self.buffer.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Starts the thread that writes the lines out, and flushes them before a panic's message
    /// (once per process).
    fn start_flushing(&'static self) {
        self.flushing.call_once(|| {
            let started = std::thread::Builder::new()
                .name("mcpauth-log".to_owned())
                .spawn(move || {
                    loop {
                        let buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
                        drop(
                            self.filled
                                .wait_while(buffer, |buffer| buffer.is_empty())
                                .unwrap_or_else(PoisonError::into_inner),
                        );
                        std::thread::sleep(LOG_FLUSH_INTERVAL);
                        self.flush();
                    }
                });
            if let Err(error) = started {
                eprintln!("mcpauth: cannot start the log writer thread: {error}");
            }
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // `try_lock`: a panic while the buffer is held must not wait for itself.
                if let Ok(mut buffer) = self.buffer.try_lock() {
                    write_out(&mut buffer);
                }
                previous(info);
            }));
        });
    }
}

fn write_out(buffer: &mut Vec<u8>) {
    if !buffer.is_empty() {
        // Nowhere to report a failure to write the log.
        let _ = std::io::stderr().lock().write_all(buffer);
        buffer.clear();
    }
}

/// The log subscriber's writer: appends each formatted line to [`LOG_LINES`] (the subscriber
/// writes a line in one call).
struct BufferedStderr;

impl Write for BufferedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        LOG_LINES.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The format the process logs in: what [`init_logging`] installed, text before that.
pub fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// Runs `emit` with its events written to standard output as JSON lines shaped like the log's
/// (`timestamp`, `level`, `message`, the fields at the top level), whatever `RUST_LOG` says:
/// for what a JSON-logging process prints to standard output (its start banner), so that a log
/// shipper reading both streams sees only JSON.
pub fn json_on_stdout(emit: impl FnOnce()) {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_clients_are_kept_only_when_harmless() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(acceptable_request_id(&ok), Some("abc-123_x.y:z"));
        for bad in ["", "a b", "a\"b", "{\"json\":1}", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(acceptable_request_id(&value), None, "{bad:?}");
        }
    }

    #[test]
    fn log_formats() {
        let parse = |value: &str| serde_json::from_value::<LogFormat>(serde_json::json!(value));
        assert_eq!(parse("json").unwrap(), LogFormat::Json);
        assert_eq!(parse("text").unwrap(), LogFormat::Text);
        assert!(parse("xml").is_err());
    }
}
