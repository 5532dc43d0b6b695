//! Per-tool policy on answers: a `tools/list` answer — one JSON body, or events of an SSE
//! stream, filtered event by event as they pass — keeps only the tools the caller's token may
//! call. (Calls themselves are checked by the guard's `tool_scope`s before the request leaves.)

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

/// Tool name → the scopes calling it needs (besides the resource's own).
pub type ToolScopes = HashMap<String, Vec<String>>;

/// The largest SSE event, or JSON answer, the filter holds while it reads a `tools/list`
/// answer. A larger one ends the answer.
pub const MAX_FILTERED_MESSAGE: usize = 16 * 1024 * 1024;

/// The ids of the `tools/list` requests in a JSON-RPC message or batch. A body that is not
/// JSON yields none: the upstream refuses it, and no answer to it can be a tool list.
pub fn list_request_ids(body: &[u8]) -> Vec<Value> {
    fn id(message: &Value) -> Option<Value> {
        (message.get("method")?.as_str()? == "tools/list").then(|| message.get("id").cloned())?
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(batch)) => batch.iter().filter_map(id).collect(),
        Ok(message) => id(&message).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

/// What the caller may see of `tools/list` answers.
#[derive(Clone)]
pub struct ListFilter {
    /// Ids of the `tools/list` requests whose answers are filtered.
    pub ids: Arc<Vec<Value>>,
    /// The scopes each tool needs.
    pub tool_scopes: Arc<ToolScopes>,
    /// The caller's scopes.
    pub granted: Arc<Vec<String>>,
}

impl ListFilter {
    fn allowed(&self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return true;
        };
        self.tool_scopes
            .get(name)
            .is_none_or(|needed| needed.iter().all(|s| self.granted.contains(s)))
    }

    /// Drops the tools the caller may not call from `message` (or each message of a batch)
    /// when it answers one of the `tools/list` requests. True when it changed anything.
    fn filter_value(&self, message: &mut Value) -> bool {
        if let Value::Array(batch) = message {
            // Every message is filtered: no short-circuit.
            let mut changed = false;
            for m in batch {
                changed |= self.filter_value(m);
            }
            return changed;
        }
        let answers_list = message.get("id").is_some_and(|id| self.ids.contains(id));
        if !answers_list {
            return false;
        }
        let Some(Value::Array(tools)) = message.pointer_mut("/result/tools") else {
            return false;
        };
        let before = tools.len();
        tools.retain(|tool| self.allowed(tool));
        tools.len() != before
    }

    /// A JSON answer body, filtered. A body that is not JSON is passed on as it is.
    pub fn filter_json(&self, body: Bytes) -> Bytes {
        let Ok(mut message) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        if !self.filter_value(&mut message) {
            return body;
        }
        serde_json::to_vec(&message).map_or(body, Bytes::from)
    }

    /// One SSE event (its lines, without the blank line that ends it), filtered: the `data`
    /// of an answer to `tools/list` is rewritten, every other line kept.
    fn filter_event(&self, event: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(event).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let data: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return None;
        }
        let mut message: Value = serde_json::from_str(&data.join("\n")).ok()?;
        if !self.filter_value(&mut message) {
            return None;
        }
        let mut out = Vec::with_capacity(event.len());
        let mut data_written = false;
        for line in lines {
            if line.starts_with("data:") {
                if !data_written {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(message.to_string().as_bytes());
                    out.push(b'\n');
                    data_written = true;
                }
            } else {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        Some(out)
    }

    /// `upstream`, an SSE body, with each event passed on as soon as it is complete —
    /// filtered when it answers `tools/list`, byte for byte otherwise.
    pub fn filter_sse<S, E>(
        self,
        upstream: S,
    ) -> Pin<Box<dyn Stream<Item = Result<Bytes, SseError>> + Send>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let state = (Box::pin(upstream), BytesMut::new(), self, false);
        Box::pin(futures_util::stream::unfold(
            state,
            |(mut upstream, mut buffer, filter, mut done)| async move {
                loop {
                    if let Some(end) = event_end(&buffer) {
                        let event = buffer.split_to(end.event_len + end.separator_len);
                        let body = &event[..end.event_len];
                        let out = match filter.filter_event(body) {
                            Some(mut rewritten) => {
                                rewritten.push(b'\n');
                                Bytes::from(rewritten)
                            }
                            None => event.freeze(),
                        };
                        return Some((Ok(out), (upstream, buffer, filter, done)));
                    }
                    if done {
                        if buffer.is_empty() {
                            return None;
                        }
                        // An unterminated last event is passed on as it came.
                        let rest = buffer.split().freeze();
                        return Some((Ok(rest), (upstream, buffer, filter, done)));
                    }
                    if buffer.len() > MAX_FILTERED_MESSAGE {
                        done = true;
                        buffer.clear();
                        return Some((Err(SseError::TooLarge), (upstream, buffer, filter, done)));
                    }
                    match upstream.next().await {
                        Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                        Some(Err(error)) => {
                            done = true;
                            buffer.clear();
                            let error = SseError::Upstream(error.to_string());
                            return Some((Err(error), (upstream, buffer, filter, done)));
                        }
                        None => done = true,
                    }
                }
            },
        ))
    }
}

/// Why a filtered SSE answer ended early.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The upstream's body failed.
    #[error("the upstream's answer failed: {0}")]
    Upstream(String),
    /// One event was larger than [`MAX_FILTERED_MESSAGE`].
    #[error("an event of the upstream's answer is too large")]
    TooLarge,
}

pub(crate) struct EventEnd {
    pub(crate) event_len: usize,
    pub(crate) separator_len: usize,
}

/// Where the first complete SSE event in `buffer` ends: a blank line, with any of the three
/// line endings the SSE format allows (`\n`, `\r\n`, `\r`).
pub(crate) fn event_end(buffer: &[u8]) -> Option<EventEnd> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buffer.len() {
        let eol = match buffer[i] {
            b'\n' => 1,
            b'\r' if buffer.get(i + 1) == Some(&b'\n') => 2,
            // A lone `\r` at the end of what has arrived may be half of `\r\n`: wait.
            b'\r' if i + 1 == buffer.len() => return None,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            return Some(EventEnd {
                event_len: line_start,
                separator_len: eol,
            });
        }
        i += eol;
        line_start = i;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(granted: &[&str]) -> ListFilter {
        let mut tool_scopes = ToolScopes::new();
        tool_scopes.insert("admin".into(), vec!["notes:admin".into()]);
        ListFilter {
            ids: Arc::new(vec![json!(2)]),
            tool_scopes: Arc::new(tool_scopes),
            granted: Arc::new(granted.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    const LIST: &str =
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo"},{"name":"admin"}]}}"#;

    #[test]
    fn finds_list_request_ids() {
        assert_eq!(
            list_request_ids(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#),
            [json!("a")]
        );
        assert_eq!(
            list_request_ids(br#"[{"id":1,"method":"tools/call"},{"id":2,"method":"tools/list"}]"#),
            [json!(2)]
        );
        assert!(list_request_ids(b"not json").is_empty());
        assert!(list_request_ids(br#"{"method":"tools/list"}"#).is_empty());
    }

    #[test]
    fn json_answers_keep_only_callable_tools() {
        let filtered: Value =
            serde_json::from_slice(&filter(&["mcp:tools"]).filter_json(Bytes::from(LIST))).unwrap();
        assert_eq!(filtered["result"]["tools"], json!([{"name": "echo"}]));
        let all = filter(&["notes:admin"]).filter_json(Bytes::from(LIST));
        assert_eq!(all, Bytes::from(LIST));
        // Another request's answer is not touched.
        let other = LIST.replace("\"id\":2", "\"id\":3");
        assert_eq!(
            filter(&[]).filter_json(Bytes::from(other.clone())),
            Bytes::from(other)
        );
    }

    #[tokio::test]
    async fn sse_answers_are_filtered_event_by_event() {
        let stream = format!(
            "event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\r\n\r\nid: 7\ndata: {LIST}\n\n: comment\n\n"
        );
        // Split at every byte, so that events span chunks.
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = stream
            .as_bytes()
            .iter()
            .map(|b| Ok(Bytes::copy_from_slice(&[*b])))
            .collect();
        let out: Vec<Bytes> = filter(&[])
            .filter_sse(futures_util::stream::iter(chunks))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0],
            "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n"
        );
        let second = std::str::from_utf8(&out[1]).unwrap();
        assert!(second.starts_with("id: 7\ndata: {"), "{second}");
        assert!(second.ends_with("}\n\n"), "{second}");
        assert!(!second.contains("admin"), "{second}");
        assert_eq!(out[2], ": comment\n\n");
    }

    #[test]
    fn event_ends() {
        assert!(event_end(b"data: x\n").is_none());
        assert!(event_end(b"data: x\r").is_none());
        let end = event_end(b"data: x\r\n\r\nmore").unwrap();
        assert_eq!((end.event_len, end.separator_len), (9, 2));
        let end = event_end(b"data: x\r\rmore").unwrap();
        assert_eq!((end.event_len, end.separator_len), (8, 1));
    }
}
