//! Request parameters from a query string, an `application/x-www-form-urlencoded` body or a
//! JSON object, under the rules of RFC 6749 §3 (§3.1 and §3.2): a parameter sent without a value
//! is treated as omitted, and a parameter may not be repeated (except those the caller lists,
//! such as RFC 8707 `resource`).
//!
//! Which parser applies to a body (its `Content-Type`) and how large a body may be are HTTP
//! matters, decided by the web crate.

use serde_json::Value;

use crate::error::OAuthError;

/// Request parameters, in the order sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a query string (without the `?`).
    pub fn from_query(query: Option<&str>, repeatable: &[&str]) -> Result<Self, OAuthError> {
        Self::checked(decode(query.unwrap_or_default().as_bytes()), repeatable)
    }

    /// Parses an `application/x-www-form-urlencoded` body, which must be UTF-8.
    pub fn from_form(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the body is not valid UTF-8"));
        }
        Self::checked(decode(body), repeatable)
    }

    /// Parses an `application/json` body: an object whose values are strings, booleans or
    /// numbers (`null` counts as absent); a `repeatable` parameter may also be an array of
    /// strings.
    pub fn from_json(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| OAuthError::invalid_request(format!("the body is not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(OAuthError::invalid_request(
                "the JSON body must be an object",
            ));
        };
        let mut pairs = Vec::with_capacity(object.len());
        for (key, value) in object {
            match value {
                Value::Null => {}
                Value::String(s) => pairs.push((key, s)),
                Value::Bool(b) => pairs.push((key, b.to_string())),
                Value::Number(n) => pairs.push((key, n.to_string())),
                Value::Array(items) if repeatable.contains(&key.as_str()) => {
                    for item in items {
                        let Value::String(s) = item else {
                            return Err(OAuthError::invalid_request(format!(
                                "parameter {key:?} must be a string or an array of strings"
                            )));
                        };
                        pairs.push((key.clone(), s));
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

    /// Every parameter, in the order sent (empty values included).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of a required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name:?} is required")))
    }
}

fn decode(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use proptest::prelude::*;

    fn description(result: Result<Params, OAuthError>) -> String {
        result.err().map(|e| e.description).unwrap_or_default()
    }

    #[test]
    fn repeated_parameters_are_refused_unless_allowed() {
        let repeated = Params::from_query(Some("a=1&a=2"), &[]);
        assert_eq!(
            repeated.as_ref().err().map(|e| e.code),
            Some(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            description(repeated),
            "parameter \"a\" must not be repeated"
        );
        assert!(Params::from_query(Some("a=1&a="), &[]).is_ok());
        assert!(Params::from_query(Some("a=&a=1"), &[]).is_ok());
        let p = Params::from_query(Some("resource=x&resource=y"), &["resource"]);
        assert_eq!(p.map(|p| p.all("resource").len()).ok(), Some(2));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::from_query(Some("scope=&state=s"), &[]).unwrap_or_default();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("state"), Some("s"));
        assert!(p.require("scope").is_err());
        assert_eq!(
            p.require("scope").err().map(|e| e.description),
            Some("parameter \"scope\" is required".to_owned())
        );
        assert_eq!(p.require("state").ok(), Some("s"));
        assert_eq!(p.pairs().count(), 2);
        assert!(Params::from_query(None, &[]).is_ok_and(|p| p.pairs().count() == 0));
    }

    #[test]
    fn form_bodies() {
        let p = Params::from_form(b"grant_type=x&code=%2Fy", &[]);
        assert_eq!(
            p.ok().and_then(|p| p.get("code").map(str::to_owned)),
            Some("/y".into())
        );
        assert_eq!(
            description(Params::from_form(b"a=\xff", &[])),
            "the body is not valid UTF-8"
        );
        assert!(Params::from_form(b"a=1&a=2", &[]).is_err());
    }

    #[test]
    fn json_bodies() {
        let p = Params::from_json(br#"{"accept":true,"n":1,"gone":null}"#, &[]).unwrap_or_default();
        assert_eq!(p.get("accept"), Some("true"));
        assert_eq!(p.get("n"), Some("1"));
        assert_eq!(p.get("gone"), None);
        assert!(
            description(Params::from_json(b"{not json", &[]))
                .starts_with("the body is not valid JSON: ")
        );
        assert_eq!(
            description(Params::from_json(b"[1]", &[])),
            "the JSON body must be an object"
        );
        assert_eq!(
            description(Params::from_json(br#"{"a":{"b":1}}"#, &[])),
            "parameter \"a\" must be a string"
        );
        assert_eq!(
            description(Params::from_json(br#"{"a":["x"]}"#, &[])),
            "parameter \"a\" must be a string"
        );
        let resources = Params::from_json(
            br#"{"resource":["https://a.test","https://b.test"]}"#,
            &["resource"],
        );
        assert_eq!(resources.map(|p| p.all("resource").len()).ok(), Some(2));
        assert_eq!(
            description(Params::from_json(br#"{"resource":[1]}"#, &["resource"])),
            "parameter \"resource\" must be a string or an array of strings"
        );
    }

    proptest! {
        #[test]
        fn distinct_names_round_trip(values in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{1,16}", 0..8)) {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(values.iter())
                .finish();
            let parsed = Params::from_query(Some(&query), &[]);
            prop_assert!(parsed.is_ok());
            let parsed = parsed.unwrap_or_default();
            for (name, value) in &values {
                prop_assert_eq!(parsed.get(name), Some(value.as_str()));
            }
        }
    }
}
