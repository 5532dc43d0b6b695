//! The user's own credential for an upstream (connected accounts, SECURITY V3): an upstream may
//! name one connection whose token the gateway puts into one header of the requests that run
//! its code on the user's behalf.
//!
//! Where the token goes: only into requests to the upstream configured for that connection,
//! only in that header, never into an answer, a log line or a metric. The header is marked
//! sensitive (HTTP/2 never indexes it, `Debug` never shows it), and the client's own header
//! of that name is always dropped, so that a client can never pass a credential of its choosing
//! as if it were the user's.

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::headers;

/// What stands for the token in a [`Credential`]'s format.
pub const TOKEN_PLACEHOLDER: &str = "{token}";

/// The methods whose requests carry the credential: they run the upstream's code for the user.
/// Everything else (`initialize`, `tools/list`, notifications, `ping`, the GET stream, DELETE)
/// goes without it.
pub const CREDENTIAL_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// One upstream's credential: the connection whose token it is, and how it is sent.
#[derive(Clone)]
pub struct Credential {
    /// The connection's id (`[[connections]] id`).
    pub connection: String,
    /// The header the token goes in.
    pub header: HeaderName,
    /// The header's value before and after the token (from `format`).
    prefix: String,
    suffix: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("connection", &self.connection)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Why a credential's settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// Not a header name.
    #[error("{0:?} is not a header name")]
    HeaderName(String),
    /// A header the gateway sets or drops itself.
    #[error(
        "the header {0} is one the gateway sets or drops itself (identity, hop-by-hop, MCP session or content headers); choose another"
    )]
    ReservedHeader(String),
    /// The format does not hold `{token}` exactly once, or has characters no header may carry.
    #[error(
        "the format must hold {{token}} exactly once, in visible ASCII (e.g. \"Bearer {{token}}\")"
    )]
    Format,
}

/// Headers that cannot carry the credential: the gateway sets them itself or drops them, or
/// they describe the message rather than the caller.
const RESERVED: [&str; 9] = [
    "host",
    "accept-encoding",
    "content-type",
    "content-length",
    "accept",
    "origin",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

impl Credential {
    /// The credential of `connection`, sent in `header` as `format` with `{token}` replaced.
    pub fn new(connection: &str, header: &str, format: &str) -> Result<Self, CredentialError> {
        let name = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| CredentialError::HeaderName(header.to_owned()))?;
        let lower = name.as_str();
        if lower.starts_with(crate::identity::PREFIX)
            || lower.starts_with("mcp-")
            || RESERVED.contains(&lower)
            || headers::HOP_BY_HOP.contains(&lower)
        {
            return Err(CredentialError::ReservedHeader(lower.to_owned()));
        }
        let mut parts = format.split(TOKEN_PLACEHOLDER);
        let (Some(prefix), Some(suffix), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CredentialError::Format);
        };
        let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable(prefix) || !printable(suffix) {
            return Err(CredentialError::Format);
        }
        Ok(Self {
            connection: connection.to_owned(),
            header: name,
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The header's value for `token`, marked sensitive; `None` when the token holds a
    /// character no header may carry (the provider sent something that is no token).
    pub fn value(&self, token: &str) -> Option<HeaderValue> {
        let mut text = String::with_capacity(self.prefix.len() + token.len() + self.suffix.len());
        text.push_str(&self.prefix);
        text.push_str(token);
        text.push_str(&self.suffix);
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// A JSON-RPC request among [`CREDENTIAL_METHODS`] in a POST body: its id and method.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialCall {
    /// The request's id.
    pub id: Value,
    /// Its method.
    pub method: String,
}

/// What a POST body asks of the credential.
#[derive(Debug, Clone, PartialEq)]
pub enum Needs {
    /// Nothing runs for the user: no credential.
    Nothing,
    /// One request that runs for the user.
    Call(CredentialCall),
    /// A batch (pre-2025-06-18 clients) holding such a request: the credential goes along when
    /// the user has connected; the gateway cannot answer for part of a batch, so it never asks.
    Batch,
}

/// What `body` (a POST body) needs.
pub fn needs(body: &[u8]) -> Needs {
    fn call(message: &Value) -> Option<CredentialCall> {
        let method = message.get("method")?.as_str()?;
        let id = message.get("id")?;
        CREDENTIAL_METHODS
            .contains(&method)
            .then(|| CredentialCall {
                id: id.clone(),
                method: method.to_owned(),
            })
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(batch)) if batch.iter().any(|m| call(m).is_some()) => Needs::Batch,
        Ok(message) => call(&message).map_or(Needs::Nothing, Needs::Call),
        Err(_) => Needs::Nothing,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_put_the_token_in_its_place() {
        let bearer = Credential::new("github", "Authorization", "Bearer {token}").unwrap();
        assert_eq!(bearer.header, "authorization");
        let value = bearer.value("gho_abc").unwrap();
        assert_eq!(value, "Bearer gho_abc");
        assert!(value.is_sensitive());
        let bare = Credential::new("jira", "X-Api-Token", "{token}").unwrap();
        assert_eq!(bare.value("t").unwrap(), "t");
        assert!(bare.value("a\r\nX-Evil: 1").is_none());
    }

    #[test]
    fn v3_debug_never_shows_the_format_or_a_token() {
        let credential = Credential::new("github", "Authorization", "token {token}").unwrap();
        let shown = format!(
            "{credential:?} {:?}",
            credential.value("gho_secret").unwrap()
        );
        assert!(!shown.contains("gho_secret"), "{shown}");
    }

    #[test]
    fn reserved_headers_and_bad_formats_are_refused() {
        for header in [
            "X-MCPAuth-User-Id",
            "Mcp-Session-Id",
            "Mcp-Method",
            "Host",
            "Connection",
            "Transfer-Encoding",
            "Content-Type",
            "Accept",
        ] {
            assert!(
                matches!(
                    Credential::new("c", header, "{token}"),
                    Err(CredentialError::ReservedHeader(_))
                ),
                "{header}"
            );
        }
        assert_eq!(
            Credential::new("c", "bad header", "{token}").unwrap_err(),
            CredentialError::HeaderName("bad header".into())
        );
        for format in ["Bearer", "{token} {token}", "Bearer\n{token}"] {
            assert_eq!(
                Credential::new("c", "Authorization", format).unwrap_err(),
                CredentialError::Format,
                "{format}"
            );
        }
        // Headers the gateway drops from the client may carry it: the client's never pass.
        assert!(Credential::new("c", "Cookie", "session={token}").is_ok());
    }

    #[test]
    fn only_calls_that_run_for_the_user_need_it() {
        let body = |v: Value| v.to_string().into_bytes();
        assert_eq!(
            needs(&body(
                json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}})
            )),
            Needs::Call(CredentialCall {
                id: json!(7),
                method: "tools/call".into()
            })
        );
        for other in [
            json!({"jsonrpc":"2.0","id":1,"method":"initialize"}),
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","method":"tools/call"}),
            json!({"jsonrpc":"2.0","id":3,"result":{}}),
        ] {
            assert_eq!(needs(&body(other.clone())), Needs::Nothing, "{other}");
        }
        assert_eq!(
            needs(&body(json!([
                {"jsonrpc":"2.0","id":1,"method":"tools/list"},
                {"jsonrpc":"2.0","id":2,"method":"prompts/get"}
            ]))),
            Needs::Batch
        );
        assert_eq!(needs(b"not json"), Needs::Nothing);
    }
}
