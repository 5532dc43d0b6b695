//! The security log's one choke point: every security event is built here, counted and
//! logged as it is created. A leaf, so every service can record events without reaching the
//! `McpAuth` hub.

use mcpauth_core::model::AuditEvent;

/// A security-log entry at `at`: the one choke point every security event passes, counted (and
/// logged) when it is created — before a store method writes it in its transaction, so an
/// event whose write then fails is counted too (its request answers 503). `kind` is one of this
/// crate's fixed names, never client input, so the label set stays bounded.
pub(crate) fn security_event(
    at: i64,
    kind: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    ip: Option<&str>,
    detail: serde_json::Value,
) -> AuditEvent {
    metrics::counter!("mcpauth_security_events_total", "kind" => kind.to_owned()).increment(1);
    tracing::info!(
        event = kind,
        user_id = user_id.unwrap_or_default(),
        client_id = client_id.unwrap_or_default(),
        "security event"
    );
    AuditEvent {
        at,
        kind: kind.to_owned(),
        user_id: user_id.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ip: ip.map(str::to_owned),
        detail: detail.to_string(),
    }
}
