//! Who is calling, told to the upstream instead of the client's token (SECURITY M4): the
//! `X-MCPAuth-*` headers, and the same facts as a short-lived JWT signed with mcpauth's key
//! (`X-MCPAuth-Assertion`, `aud` = the upstream's resource) for an upstream that verifies
//! rather than trusts headers. Built once per access token and reused while the assertion has
//! at least half its lifetime left, so that most requests cost neither a user lookup nor a
//! signature. A machine (`client_credentials`) gets `X-MCPAuth-Client-Id` and no user headers;
//! its assertion's `sub` is the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue};
use mcpauth::{McpAuth, McpSession};
use serde_json::{Map, Value};

/// Lifetime of an identity assertion, seconds.
pub const ASSERTION_LIFETIME: i64 = 60;

/// The most identities kept; past it the cache starts over.
const CAPACITY: usize = 10_000;

/// The user's id (the assertion's `sub`); absent for a machine, whose `sub` is the client.
pub const USER_ID: HeaderName = HeaderName::from_static("x-mcpauth-user-id");
/// The user's email.
pub const EMAIL: HeaderName = HeaderName::from_static("x-mcpauth-email");
/// The user's display name.
pub const NAME: HeaderName = HeaderName::from_static("x-mcpauth-name");
/// The client the token was issued to.
pub const CLIENT_ID: HeaderName = HeaderName::from_static("x-mcpauth-client-id");
/// The token's scopes, space-separated.
pub const SCOPES: HeaderName = HeaderName::from_static("x-mcpauth-scopes");
/// The signed identity assertion (a JWT).
pub const ASSERTION: HeaderName = HeaderName::from_static("x-mcpauth-assertion");

/// The prefix of every identity header: the client's own are dropped.
pub const PREFIX: &str = "x-mcpauth-";

/// Why the caller's identity could not be established.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The store failed while reading the user.
    #[error(transparent)]
    Store(#[from] mcpauth_core::StoreError),
    /// The user of a valid token no longer exists.
    #[error("the token's user no longer exists")]
    NoUser,
    /// The assertion could not be signed.
    #[error(transparent)]
    Key(#[from] mcpauth::KeyError),
}

/// The headers an upstream gets for one caller.
pub type IdentityHeaders = Arc<Vec<(HeaderName, HeaderValue)>>;

/// Identities by access token id, with when their assertion was signed.
#[derive(Default)]
pub struct Identities {
    by_token: Mutex<HashMap<String, (i64, IdentityHeaders)>>,
}

impl Identities {
    /// The identity headers for `session` at `resource`.
    pub async fn headers(
        &self,
        auth: &McpAuth,
        resource: &str,
        session: &McpSession,
    ) -> Result<IdentityHeaders, IdentityError> {
        let now = auth.options().clock.now();
        if let Ok(cache) = self.by_token.lock()
            && let Some((signed_at, headers)) = cache.get(&session.token_id)
            && now - *signed_at < ASSERTION_LIFETIME / 2
            && *signed_at <= now
        {
            return Ok(headers.clone());
        }
        // A machine (client_credentials) has no user: no user headers, and the assertion's
        // subject is the client.
        let user = match &session.user_id {
            Some(user_id) => Some(
                auth.store()
                    .user_by_id(user_id)
                    .await?
                    .ok_or(IdentityError::NoUser)?,
            ),
            None => None,
        };
        let scope = session.scopes.join(" ");
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(auth.options().issuer.clone()));
        claims.insert("aud".into(), Value::from(resource));
        claims.insert("sub".into(), Value::from(session.subject()));
        claims.insert("client_id".into(), Value::from(session.client_id.clone()));
        claims.insert("scope".into(), Value::from(scope.clone()));
        if let Some(user) = &user {
            claims.insert("email".into(), Value::from(user.email.clone()));
            claims.insert("name".into(), Value::from(user.name.clone()));
        }
        claims.insert("iat".into(), Value::from(now));
        // Never past the access token itself.
        let exp = (now + ASSERTION_LIFETIME).min(session.expires_at);
        claims.insert("exp".into(), Value::from(exp));
        let assertion = auth.sign_jwt(&claims).await?;
        let mut list = Vec::with_capacity(6);
        if let Some(user) = &user {
            list.push((USER_ID, header_value(&user.id)));
            list.push((EMAIL, header_value(&user.email)));
            list.push((NAME, header_value(&user.name)));
        }
        list.push((CLIENT_ID, header_value(&session.client_id)));
        list.push((SCOPES, header_value(&scope)));
        list.push((ASSERTION, header_value(&assertion)));
        let headers: IdentityHeaders = Arc::new(list);
        if let Ok(mut cache) = self.by_token.lock() {
            if cache.len() >= CAPACITY {
                cache.clear();
            }
            cache.insert(session.token_id.clone(), (now, headers.clone()));
        }
        Ok(headers)
    }
}

/// `text` as a header value: visible ASCII and spaces as they are; every other byte of its
/// UTF-8 (and `%`) percent-encoded, so that names in any script survive and no control
/// character reaches the upstream.
pub fn header_value(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_percent_encode_what_is_not_visible_ascii() {
        assert_eq!(header_value("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(header_value("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(header_value("a\r\nX-Evil: 1"), "a%0D%0AX-Evil: 1");
    }
}
