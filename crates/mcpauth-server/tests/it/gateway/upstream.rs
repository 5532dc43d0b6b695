//! A small Streamable HTTP MCP server for the gateway's tests: it echoes what it received
//! (headers included), answers in JSON or SSE, streams a slow tool's progress, and keeps
//! sessions by `Mcp-Session-Id`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How long the `slow` tool takes between its progress event and its result.
pub const SLOW: Duration = Duration::from_millis(1500);

/// A running echo upstream.
pub struct Upstream {
    /// Its MCP endpoint.
    pub url: String,
    /// How many `slow` answers were dropped before their end (the client went away).
    pub abandoned: Arc<AtomicUsize>,
}

/// Starts the upstream on port 0.
pub async fn spawn() -> Upstream {
    let abandoned = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/mcp", post(message).get(stream).delete(end_session))
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .with_state(abandoned.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        url: format!("http://{address}/mcp"),
        abandoned,
    }
}

/// An `https://` front for `upstream` on its own port: terminates TLS with `tls`'s certificate
/// and passes the bytes through to the plain upstream. Returns the https URL of the MCP endpoint.
pub async fn spawn_tls_front(upstream: &Upstream, tls: &crate::common::TestTls) -> String {
    let plain = upstream.url.trim_start_matches("http://");
    let backend = plain.split('/').next().unwrap().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls.acceptor.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://localhost:{port}/mcp")
}

/// Counts an answer dropped before its end.
struct Unfinished {
    abandoned: Arc<AtomicUsize>,
    finished: bool,
}

impl Unfinished {
    fn finish(mut self) {
        self.finished = true;
        drop(self);
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A URL where nothing listens.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/mcp")
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        map.insert(
            name.as_str().to_owned(),
            Value::from(value.to_str().unwrap_or("<binary>")),
        );
    }
    Value::Object(map)
}

fn json_answer(body: Value) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("mcp-session-id", "session-1"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn sse(events: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    let body = Body::from_stream(events.map(Ok::<_, Infallible>));
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn message(
    State(abandoned): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not json").into_response();
    };
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default();
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "echo-upstream", "version": "1" },
        }),
        "tools/list" => json!({ "tools": [
            { "name": "headers", "inputSchema": { "type": "object" } },
            { "name": "slow", "inputSchema": { "type": "object" } },
            { "name": "admin_tool", "inputSchema": { "type": "object" } },
        ]}),
        "tools/call" => match request["params"]["name"].as_str() {
            Some("slow") => {
                let progress = json!({
                    "jsonrpc": "2.0", "method": "notifications/progress",
                    "params": { "progressToken": 1, "progress": 1, "total": 2 },
                });
                let done = json!({
                    "jsonrpc": "2.0", "id": id,
                    "result": { "content": [{ "type": "text", "text": "done" }] },
                });
                let unfinished = Unfinished {
                    abandoned,
                    finished: false,
                };
                let events = futures_util::stream::unfold((0, unfinished), move |(step, guard)| {
                    let (progress, done) = (progress.clone(), done.clone());
                    async move {
                        match step {
                            0 => Some((event(&progress), (1, guard))),
                            1 => {
                                tokio::time::sleep(SLOW).await;
                                Some((event(&done), (2, guard)))
                            }
                            _ => {
                                guard.finish();
                                None
                            }
                        }
                    }
                });
                return sse(events);
            }
            _ => json!({
                "content": [{ "type": "text", "text": "ok" }],
                "structuredContent": { "headers": headers_json(&headers), "body": request },
            }),
        },
        _ => return StatusCode::ACCEPTED.into_response(),
    };
    let answer = json!({ "jsonrpc": "2.0", "id": id, "result": result });
    if headers.contains_key("x-test-sse") {
        sse(futures_util::stream::iter([event(&answer)]))
    } else {
        json_answer(answer)
    }
}

/// GET: one event saying which `Last-Event-ID` and session it was resumed with; with
/// `X-Test-Hold-Open`, the stream then stays open (as a client's standing GET stream does).
async fn stream(headers: HeaderMap) -> Response {
    use futures_util::StreamExt;
    let note = json!({
        "jsonrpc": "2.0", "method": "notifications/message",
        "params": { "data": headers_json(&headers) },
    });
    let first = futures_util::stream::iter([Bytes::from(format!(
        "id: 8\nevent: message\ndata: {note}\n\n"
    ))]);
    if headers.contains_key("x-test-hold-open") {
        sse(first.chain(futures_util::stream::pending()))
    } else {
        sse(first)
    }
}

async fn end_session(headers: HeaderMap) -> Response {
    json_answer(json!({ "ended": headers_json(&headers)["mcp-session-id"] }))
}

/// An upstream that answers every request on a keep-alive connection the way uvicorn (the
/// Python SDK's server) does: the status line and headers in one write, the body in another a
/// moment later. Through a proxy that writes the two apart to its client, Nagle's algorithm
/// holds the body back until the client's delayed ACK (40 ms) unless the proxy's socket has
/// `TCP_NODELAY`. Returns its MCP endpoint.
pub async fn spawn_split_writer() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0_u8; 4096];
                loop {
                    // One whole request: its head, then Content-Length bytes of body.
                    let (head_end, length) = loop {
                        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (end + 4, length);
                        }
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    while pending.len() < head_end + length {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    pending.drain(..head_end + length);
                    let body = br#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if stream.write_all(body).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/mcp")
}
