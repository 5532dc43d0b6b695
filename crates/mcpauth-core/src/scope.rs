//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens, treated as a set that keeps
//! the order in which they were first written.

use std::fmt;

use crate::error::OAuthError;

/// A set of scope tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a scope parameter. Empty or blank input gives an empty set; a token with a
    /// character RFC 6749 does not allow is an `invalid_scope` error.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let mut scopes = Vec::new();
        for token in raw.split_ascii_whitespace() {
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid || token.len() > 128 {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {token:?} is not a valid scope token"
                )));
            }
            if !scopes.iter().any(|s| s == token) {
                scopes.push(token.to_owned());
            }
        }
        if scopes.len() > 64 {
            return Err(OAuthError::invalid_scope("too many scopes"));
        }
        Ok(Self(scopes))
    }

    /// Builds a set from known-good tokens.
    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(iter: I) -> Self {
        let mut scopes: Vec<String> = Vec::new();
        for s in iter {
            let s = s.into();
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        Self(scopes)
    }

    /// True when the set holds no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `scope` is in the set (compared case-sensitively).
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// True when every scope here is also in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    /// The scopes here that `allowed` does not contain.
    pub fn not_in<'a>(&'a self, allowed: &'a Scopes) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |s| !allowed.contains(s))
            .map(String::as_str)
    }

    /// The scopes here that `allowed` also contains, in this set's order.
    pub fn only_in(&self, allowed: &Scopes) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| allowed.contains(s))
                .cloned()
                .collect(),
        )
    }

    /// True when some scope here is also in `other`.
    pub fn intersects(&self, other: &Scopes) -> bool {
        self.0.iter().any(|s| other.contains(s))
    }

    /// This set plus the scopes of `other` it lacks.
    pub fn union(&self, other: &Scopes) -> Scopes {
        Scopes::from_tokens(self.0.iter().chain(other.0.iter()).cloned())
    }

    /// The scopes, in the order in which they were first written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Scopes::parse(&raw).map_err(|e| serde::de::Error::custom(e.description))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_deduplicates() {
        let s = Scopes::parse("openid  profile openid mcp:tools").unwrap_or_default();
        assert_eq!(s.to_string(), "openid profile mcp:tools");
        assert!(Scopes::parse("").is_ok_and(|s| s.is_empty()));
        assert!(Scopes::parse("   ").is_ok_and(|s| s.is_empty()));
    }

    #[test]
    fn refuses_characters_outside_rfc6749() {
        assert!(Scopes::parse("open\"id").is_err());
        assert!(Scopes::parse("a\\b").is_err());
        assert!(Scopes::parse("é").is_err());
    }

    #[test]
    fn subset_and_difference() {
        let all = Scopes::parse("openid profile email").unwrap_or_default();
        let some = Scopes::parse("profile").unwrap_or_default();
        assert!(some.is_subset_of(&all));
        assert!(!all.is_subset_of(&some));
        assert_eq!(all.not_in(&some).collect::<Vec<_>>(), ["openid", "email"]);
        assert_eq!(some.union(&all).to_string(), "profile openid email");
    }

    proptest! {
        #[test]
        fn display_round_trips(tokens in proptest::collection::vec("[!#-\\[\\]-~]{1,12}", 0..8)) {
            let parsed = Scopes::parse(&tokens.join(" "));
            prop_assert!(parsed.is_ok());
            let parsed = parsed.unwrap_or_default();
            let again = Scopes::parse(&parsed.to_string()).unwrap_or_default();
            prop_assert_eq!(parsed, again);
        }
    }
}
