//! Request parameters from a query string, an `application/x-www-form-urlencoded` body or a
//! JSON object, under the rules of RFC 6749 §3: a parameter sent without a value is treated as
//! omitted, and a parameter may not be repeated (except those the caller lists, such as RFC 8707
//! `resource`).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use mcpauth_core::OAuthError;

use crate::errors::OAuthJson;

/// The largest request body mcpauth reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Request parameters, in the order sent.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a query string.
    pub fn from_query(query: Option<&str>, repeatable: &[&str]) -> Result<Self, OAuthError> {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::checked(pairs, repeatable)
    }

    /// Parses a form or JSON body, choosing by `Content-Type`.
    pub fn from_body(
        headers: &HeaderMap,
        body: &[u8],
        repeatable: &[&str],
    ) -> Result<Self, OAuthError> {
        match body_kind(headers) {
            Some(BodyKind::Form) => Self::from_form(body, repeatable),
            Some(BodyKind::Json) => Self::from_json(body, repeatable),
            None => Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded or application/json",
            )),
        }
    }

    fn from_form(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the body is not valid UTF-8"));
        }
        let pairs = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::checked(pairs, repeatable)
    }

    fn from_json(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| OAuthError::invalid_request(format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(OAuthError::invalid_request(
                "the JSON body must be an object",
            ));
        };
        let mut pairs = Vec::with_capacity(object.len());
        for (key, value) in object {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => pairs.push((key, s)),
                serde_json::Value::Bool(b) => pairs.push((key, b.to_string())),
                serde_json::Value::Number(n) => pairs.push((key, n.to_string())),
                serde_json::Value::Array(items) if repeatable.contains(&key.as_str()) => {
                    for item in items {
                        match item {
                            serde_json::Value::String(s) => pairs.push((key.clone(), s)),
                            _ => {
                                return Err(OAuthError::invalid_request(format!(
                                    "parameter {key:?} must be a string or an array of strings"
                                )));
                            }
                        }
                    }
                }
                _ => {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter {key:?} must be a string"
                    )));
                }
            }
        }
        Self::checked(pairs, repeatable)
    }

    fn checked(pairs: Vec<(String, String)>, repeatable: &[&str]) -> Result<Self, OAuthError> {
        for (i, (key, value)) in pairs.iter().enumerate() {
            if value.is_empty() || repeatable.contains(&key.as_str()) {
                continue;
            }
            if pairs[..i].iter().any(|(k, v)| k == key && !v.is_empty()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {key:?} must not be repeated"
                )));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of a parameter; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every parameter, in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of a required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name:?} is required")))
    }
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        "application/json" => Some(BodyKind::Json),
        _ => None,
    }
}

/// True when the request says its body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    matches!(body_kind(headers), Some(BodyKind::Json))
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, OAuthJson> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| OAuthJson {
            error: OAuthError::invalid_request(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes or could not be read"
            )),
            basic_challenge: false,
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn repeated_parameters_are_refused_unless_allowed() {
        assert!(Params::from_query(Some("a=1&a=2"), &[]).is_err());
        assert!(Params::from_query(Some("a=1&a="), &[]).is_ok());
        let p = Params::from_query(Some("resource=x&resource=y"), &["resource"]);
        assert_eq!(p.map(|p| p.all("resource").len()).ok(), Some(2));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::from_query(Some("scope=&state=s"), &[]).unwrap_or_default();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("state"), Some("s"));
        assert!(p.require("scope").is_err());
    }

    #[test]
    fn bodies_by_content_type() {
        let p = Params::from_body(&form_headers(), b"grant_type=x&code=%2Fy", &[]);
        assert_eq!(
            p.ok().and_then(|p| p.get("code").map(str::to_owned)),
            Some("/y".into())
        );
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(Params::from_body(&json, br#"{"accept":true,"n":1}"#, &[]).is_ok());
        assert!(Params::from_body(&json, b"{not json", &[]).is_err());
        assert!(Params::from_body(&json, b"[1]", &[]).is_err());
        assert!(Params::from_body(&json, br#"{"a":{"b":1}}"#, &[]).is_err());
        assert!(Params::from_body(&HeaderMap::new(), b"a=1", &[]).is_err());
    }
}
