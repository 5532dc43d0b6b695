//! Asking the user to connect a service mid-call: URL-mode elicitation (MCP 2025-11-25).
//!
//! - What a client declared at `initialize` is remembered per `Mcp-Session-Id` and user
//!   ([`Sessions`]): only a client that declared `capabilities.elicitation.url` gets a URL
//!   elicitation (the spec forbids sending one to any other).
//! - Such a client's call is answered with `URLElicitationRequiredError` (JSON-RPC `-32042`,
//!   `data.elicitations` holding one `mode: "url"` elicitation, [`url_elicitation_required`]);
//!   any other client gets a tool result with `isError: true` whose text carries the same link
//!   ([`tool_error_with_link`]).
//! - When the connect flow of an elicitation completes, `notifications/elicitation/complete`
//!   goes out on the session's open GET stream, if it has one ([`Sessions::complete`],
//!   [`merge_sse`]); best effort: a client without an open stream retries on its own.
//!
//! The memory is this instance's: behind a load balancer without session affinity, a call that
//! lands on another instance than its `initialize` gets the tool error with the link instead.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::tools::event_end;

/// JSON-RPC error code of `URLElicitationRequiredError` (MCP 2025-11-25).
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

/// The most sessions remembered; past it the oldest are forgotten (their clients then get the
/// tool error with the link).
const CAPACITY: usize = 100_000;

/// The most elicitations awaiting completion; past it the oldest are forgotten.
const PENDING_CAPACITY: usize = 100_000;

/// Notifications queued for one open stream before more are dropped.
const STREAM_QUEUE: usize = 16;

/// Whether `body` is an `initialize` request, and then whether it declares
/// `capabilities.elicitation.url`.
pub fn initialize_declares_url(body: &[u8]) -> Option<bool> {
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("method")?.as_str()? != "initialize" {
        return None;
    }
    Some(
        message
            .pointer("/params/capabilities/elicitation/url")
            .is_some_and(Value::is_object),
    )
}

/// The `-32042` answer to request `id`: connect at `url` (elicitation `elicitation_id`).
pub fn url_elicitation_required(
    id: &Value,
    elicitation_id: &str,
    url: &str,
    message: &str,
) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": URL_ELICITATION_REQUIRED,
            "message": message,
            "data": {
                "elicitations": [{
                    "mode": "url",
                    "elicitationId": elicitation_id,
                    "url": url,
                    "message": message,
                }],
            },
        },
    })
}

/// The answer to `tools/call` `id` for a client that cannot be sent a URL elicitation: a tool
/// error whose text says where to connect.
pub fn tool_error_with_link(id: &Value, url: &str, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "content": [{ "type": "text", "text": format!("{message} Open {url} , then call the tool again.") }],
            "isError": true,
        },
    })
}

/// The answer to another request (`resources/read`, `prompts/get`) of a client that cannot be
/// sent a URL elicitation: a JSON-RPC error whose message carries the link.
pub fn error_with_link(id: &Value, url: &str, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32603,
            "message": format!("{message} Open {url} , then try again."),
        },
    })
}

/// `notifications/elicitation/complete` for `elicitation_id`, as one SSE event.
pub fn complete_event(elicitation_id: &str) -> Bytes {
    let message = json!({
        "jsonrpc": "2.0",
        "method": "notifications/elicitation/complete",
        "params": { "elicitationId": elicitation_id },
    });
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

struct Session {
    user_id: String,
    url_elicitation: bool,
    streams: Vec<mpsc::Sender<Bytes>>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    order: VecDeque<String>,
    /// Elicitation id → the session it was sent to.
    pending: HashMap<String, String>,
    pending_order: VecDeque<String>,
}

/// What each MCP session declared, its open GET streams, and the elicitations sent to it.
#[derive(Default)]
pub struct Sessions {
    state: Mutex<State>,
}

impl Sessions {
    /// Remembers that `session_id`, opened by `user_id`, declared (or not) URL elicitation.
    pub fn remember(&self, session_id: &str, user_id: &str, url_elicitation: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let session = Session {
            user_id: user_id.to_owned(),
            url_elicitation,
            streams: Vec::new(),
        };
        if state
            .sessions
            .insert(session_id.to_owned(), session)
            .is_none()
        {
            state.order.push_back(session_id.to_owned());
        }
        while state.order.len() > CAPACITY {
            if let Some(old) = state.order.pop_front() {
                state.sessions.remove(&old);
            }
        }
    }

    /// Whether `session_id` (of `user_id`: a session id replayed by another user counts as
    /// unknown) declared URL elicitation.
    pub fn url_elicitation(&self, session_id: &str, user_id: &str) -> bool {
        self.state.lock().is_ok_and(|state| {
            state
                .sessions
                .get(session_id)
                .is_some_and(|s| s.user_id == user_id && s.url_elicitation)
        })
    }

    /// Forgets `session_id` (the client ended it).
    pub fn forget(&self, session_id: &str, user_id: &str) {
        if let Ok(mut state) = self.state.lock()
            && state
                .sessions
                .get(session_id)
                .is_some_and(|s| s.user_id == user_id)
        {
            state.sessions.remove(session_id);
            state.order.retain(|id| id != session_id);
        }
    }

    /// Records that `elicitation_id` was sent to `session_id`.
    pub fn sent(&self, elicitation_id: &str, session_id: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state
            .pending
            .insert(elicitation_id.to_owned(), session_id.to_owned());
        state.pending_order.push_back(elicitation_id.to_owned());
        while state.pending_order.len() > PENDING_CAPACITY {
            if let Some(old) = state.pending_order.pop_front() {
                state.pending.remove(&old);
            }
        }
    }

    /// A channel for gateway notifications on a GET stream `user_id` opened for `session_id`;
    /// `None` for a session this gateway does not know for that user.
    pub fn open_stream(&self, session_id: &str, user_id: &str) -> Option<mpsc::Receiver<Bytes>> {
        let mut state = self.state.lock().ok()?;
        let session = state
            .sessions
            .get_mut(session_id)
            .filter(|s| s.user_id == user_id && s.url_elicitation)?;
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        session.streams.retain(|s| !s.is_closed());
        session.streams.push(sender);
        Some(receiver)
    }

    /// The connect flow of `elicitation_id` completed for `user_id`: tells its session on one
    /// open stream. True when a stream took the notification.
    pub fn complete(&self, elicitation_id: &str, user_id: &str) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let Some(session_id) = state.pending.remove(elicitation_id) else {
            return false;
        };
        state.pending_order.retain(|id| id != elicitation_id);
        let Some(session) = state
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.user_id == user_id)
        else {
            return false;
        };
        session.streams.retain(|s| !s.is_closed());
        let event = complete_event(elicitation_id);
        session
            .streams
            .iter()
            .any(|stream| stream.try_send(event.clone()).is_ok())
    }
}

/// `upstream`, an SSE body, with the gateway's own events from `own` put in between its
/// events (never inside one): each upstream event is passed on as soon as it is complete.
pub fn merge_sse<S, E>(
    upstream: S,
    own: mpsc::Receiver<Bytes>,
) -> Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    let state = (Box::pin(upstream), BytesMut::new(), Some(own), false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut upstream, mut buffer, mut own, mut done)| async move {
            loop {
                if let Some(end) = event_end(&buffer) {
                    let event = buffer.split_to(end.event_len + end.separator_len);
                    return Some((Ok(event.freeze()), (upstream, buffer, own, done)));
                }
                if done {
                    if buffer.is_empty() {
                        return None;
                    }
                    let rest = buffer.split().freeze();
                    return Some((Ok(rest), (upstream, buffer, own, done)));
                }
                let next = match own.as_mut() {
                    Some(receiver) => tokio::select! {
                        chunk = upstream.next() => Ok(chunk),
                        event = receiver.recv() => Err(event),
                    },
                    None => Ok(upstream.next().await),
                };
                match next {
                    Ok(Some(Ok(chunk))) => buffer.extend_from_slice(&chunk),
                    Ok(Some(Err(error))) => {
                        done = true;
                        buffer.clear();
                        return Some((Err(error), (upstream, buffer, own, done)));
                    }
                    Ok(None) => done = true,
                    // Every event so far has been passed on whole: this one goes in between.
                    Err(Some(event)) => return Some((Ok(event), (upstream, buffer, own, done))),
                    Err(None) => own = None,
                }
            }
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn the_capability_is_read_from_initialize_only() {
        let init = |caps: Value| {
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":caps,
                "clientInfo":{"name":"t","version":"1"}}})
            .to_string()
        };
        assert_eq!(
            initialize_declares_url(init(json!({"elicitation":{"url":{}}})).as_bytes()),
            Some(true)
        );
        assert_eq!(
            initialize_declares_url(init(json!({"elicitation":{"form":{}}})).as_bytes()),
            Some(false)
        );
        // `elicitation: {}` means form mode only (2025-11-25).
        assert_eq!(
            initialize_declares_url(init(json!({"elicitation":{}})).as_bytes()),
            Some(false)
        );
        assert_eq!(
            initialize_declares_url(init(json!({"elicitation":{"url":true}})).as_bytes()),
            Some(false)
        );
        assert_eq!(
            initialize_declares_url(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
    }

    #[test]
    fn the_error_has_the_shape_of_url_elicitation_required() {
        let error = url_elicitation_required(
            &json!(4),
            "el-1",
            "https://auth.example.com/connections/github/connect?e=el-1",
            "Connect GitHub.",
        );
        assert_eq!(error["id"], 4);
        assert_eq!(error["error"]["code"], -32042);
        let elicitations = error["error"]["data"]["elicitations"].as_array().unwrap();
        assert_eq!(elicitations.len(), 1);
        assert_eq!(elicitations[0]["mode"], "url");
        assert_eq!(elicitations[0]["elicitationId"], "el-1");
        assert_eq!(
            elicitations[0]["url"],
            "https://auth.example.com/connections/github/connect?e=el-1"
        );
        assert_eq!(elicitations[0]["message"], "Connect GitHub.");

        let tool = tool_error_with_link(&json!("a"), "https://x.example/c", "Connect GitHub.");
        assert_eq!(tool["id"], "a");
        assert_eq!(tool["result"]["isError"], true);
        let text = tool["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("https://x.example/c "), "{text}");
        assert!(tool.get("error").is_none());
    }

    #[test]
    fn sessions_are_bound_to_their_user() {
        let sessions = Sessions::default();
        sessions.remember("s1", "alice", true);
        sessions.remember("s2", "alice", false);
        assert!(sessions.url_elicitation("s1", "alice"));
        assert!(!sessions.url_elicitation("s1", "bob"));
        assert!(!sessions.url_elicitation("s2", "alice"));
        assert!(!sessions.url_elicitation("s3", "alice"));
        assert!(sessions.open_stream("s1", "bob").is_none());
        sessions.forget("s1", "bob");
        assert!(sessions.url_elicitation("s1", "alice"));
        sessions.forget("s1", "alice");
        assert!(!sessions.url_elicitation("s1", "alice"));
    }

    #[tokio::test]
    async fn completion_goes_to_the_open_stream_of_its_session() {
        let sessions = Sessions::default();
        sessions.remember("s1", "alice", true);
        sessions.remember("s2", "alice", true);
        let mut stream = sessions.open_stream("s1", "alice").unwrap();
        let mut other = sessions.open_stream("s2", "alice").unwrap();
        sessions.sent("el-1", "s1");
        assert!(!sessions.complete("unknown", "alice"));
        sessions.sent("el-2", "s1");
        assert!(
            !sessions.complete("el-2", "bob"),
            "another user's completion"
        );
        assert!(sessions.complete("el-1", "alice"));
        assert!(!sessions.complete("el-1", "alice"), "once");
        let event = stream.recv().await.unwrap();
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert!(text.contains(r#""method":"notifications/elicitation/complete""#));
        assert!(text.contains(r#""elicitationId":"el-1""#));
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn own_events_go_between_upstream_events_never_inside() {
        let (sender, receiver) = mpsc::channel(4);
        let (chunks_in, chunks_out) = mpsc::channel::<Result<Bytes, Infallible>>(4);
        let upstream = tokio_stream_of(chunks_out);
        let mut merged = merge_sse(upstream, receiver);
        chunks_in
            .send(Ok(Bytes::from_static(
                b"id: 1\ndata: {\"a\":1}\n\nid: 2\nda",
            )))
            .await
            .unwrap();
        assert_eq!(
            merged.next().await.unwrap().unwrap(),
            "id: 1\ndata: {\"a\":1}\n\n"
        );
        // Half an upstream event is held; the gateway's event goes first, whole.
        sender.send(complete_event("el")).await.unwrap();
        let own = merged.next().await.unwrap().unwrap();
        assert!(own.starts_with(b"event: message\n"));
        chunks_in
            .send(Ok(Bytes::from_static(b"ta: {\"b\":2}\n\n")))
            .await
            .unwrap();
        assert_eq!(
            merged.next().await.unwrap().unwrap(),
            "id: 2\ndata: {\"b\":2}\n\n"
        );
        drop(sender);
        drop(chunks_in);
        assert!(merged.next().await.is_none());
    }

    fn tokio_stream_of(
        mut receiver: mpsc::Receiver<Result<Bytes, Infallible>>,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
