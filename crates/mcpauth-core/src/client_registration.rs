//! Client registration rules (RFC 7591 §2 client metadata, §3.2.2 errors; OAuth 2.1 §2.3.1).
//!
//! One set of limits for every way a client comes to exist: dynamic registration
//! ([`ClientRegistration::parse`]), clients from configuration ([`ConfiguredClient::validate`])
//! and clients an operator creates ([`ClientRegistration::from_fields`]). Every accepted field is
//! normalised and kept in [`ClientRegistration::echo`], which the registration endpoint sends
//! back; unknown fields are ignored (RFC 7591 §2), a client-chosen `client_id` among them
//! (SECURITY S22).

use serde_json::{Map, Value};

use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, GrantType, TokenEndpointAuthMethod};
use crate::redirect_uri::RedirectUri;
use crate::scope::Scopes;

/// The most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// The longest `client_name` kept, in characters; a longer one is cut.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// The longest `client_id` a configured client may have, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 200;
/// The shortest `client_secret` a configured client may have, in bytes.
pub const MIN_CLIENT_SECRET_LEN: usize = 32;

const MAX_URL_LEN: usize = 2048;
const MAX_CONTACTS: usize = 20;
const MAX_CONTACT_LEN: usize = 320;
const MAX_SOFTWARE_FIELD_LEN: usize = 200;
const MAX_METADATA_BYTES: usize = 8192;

/// A validated registration request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientRegistration {
    /// The redirect URIs, without repeats, in the order sent.
    pub redirect_uris: Vec<RedirectUri>,
    /// How the client will authenticate (default `client_secret_basic`, RFC 7591 §2).
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// The grant types, as sent (default `authorization_code`); always include
    /// `authorization_code`.
    pub grant_types: Vec<GrantType>,
    /// `client_name`, trimmed and cut to [`MAX_CLIENT_NAME_CHARS`]; `None` when blank.
    pub client_name: Option<String>,
    /// `logo_uri` when it is an https URL (only those are shown on the consent page).
    pub logo_uri: Option<String>,
    /// Every accepted field, normalised, as the registration endpoint echoes it.
    pub echo: Map<String, Value>,
}

/// The fields of a client an operator creates or configures, checked by the same rules as a
/// registration request ([`ClientRegistration::from_fields`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientFields<'a> {
    /// `redirect_uris`.
    pub redirect_uris: &'a [String],
    /// `client_name`.
    pub client_name: Option<&'a str>,
    /// `token_endpoint_auth_method`.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// `grant_types`.
    pub grant_types: &'a [GrantType],
    /// `logo_uri`.
    pub logo_uri: Option<&'a str>,
    /// `scope`: for a machine client, the scopes it may be given.
    pub scope: Option<&'a str>,
    /// `resources`: the resources a machine client may be given tokens for; empty: all.
    pub resources: &'a [String],
    /// `jwks_uri` of a `private_key_jwt` client.
    pub jwks_uri: Option<&'a str>,
    /// `jwks` of a `private_key_jwt` client.
    pub jwks: Option<&'a Value>,
}

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn redirect_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

impl ClientRegistration {
    /// Checks an RFC 7591 registration request (the JSON object of its body). `supported` are
    /// the scopes a registered `scope` may name.
    pub fn parse(request: &Map<String, Value>, supported: &Scopes) -> Result<Self, OAuthError> {
        Self::parse_with(request, Some(supported))
    }

    /// [`Self::parse`]; `supported: None` keeps every well-formed scope (an operator's client,
    /// whose scopes are checked against the server's at the token endpoint).
    fn parse_with(
        request: &Map<String, Value>,
        supported: Option<&Scopes>,
    ) -> Result<Self, OAuthError> {
        let mut echo = Map::new();

        let token_endpoint_auth_method = match optional_string(request, "token_endpoint_auth_method")? {
            None => TokenEndpointAuthMethod::ClientSecretBasic,
            Some(raw) => TokenEndpointAuthMethod::parse(raw).ok_or_else(|| {
                metadata_error(format!(
                    "token_endpoint_auth_method {raw:?} is not supported; use none, client_secret_basic, client_secret_post or private_key_jwt"
                ))
            })?,
        };
        echo.insert(
            "token_endpoint_auth_method".into(),
            Value::from(token_endpoint_auth_method.as_str()),
        );

        let grant_names = string_list(request, "grant_types")?
            .unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().to_owned()]);
        let grant_types = grant_names
            .iter()
            .map(|grant| {
                GrantType::parse(grant).ok_or_else(|| {
                    metadata_error(format!(
                        "grant type {grant:?} is not supported; use authorization_code, refresh_token, client_credentials or {}",
                        crate::model::JWT_BEARER
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A machine (client_credentials) or an enterprise client (jwt-bearer) needs no browser
        // flow; every other client does.
        let machine_only = !grant_types.contains(&GrantType::AuthorizationCode)
            && grant_types
                .iter()
                .any(|g| matches!(g, GrantType::ClientCredentials | GrantType::JwtBearer));
        if !grant_types.contains(&GrantType::AuthorizationCode) && !machine_only {
            return Err(metadata_error(
                "grant_types must include authorization_code",
            ));
        }
        if machine_only && token_endpoint_auth_method == TokenEndpointAuthMethod::None {
            return Err(metadata_error(
                "client_credentials and jwt-bearer need a confidential client (token_endpoint_auth_method other than none)",
            ));
        }
        echo.insert("grant_types".into(), Value::from(grant_names));

        let redirect_uris = if machine_only
            && request
                .get("redirect_uris")
                .is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
        {
            Vec::new()
        } else {
            parse_redirect_uris(request)?
        };
        echo.insert(
            "redirect_uris".into(),
            Value::from(
                redirect_uris
                    .iter()
                    .map(RedirectUri::as_str)
                    .collect::<Vec<_>>(),
            ),
        );

        parse_client_keys(request, token_endpoint_auth_method, &mut echo)?;

        let response_types =
            string_list(request, "response_types")?.unwrap_or_else(|| vec!["code".to_owned()]);
        if response_types.iter().any(|r| r != "code") || response_types.is_empty() {
            return Err(metadata_error("response_types must be [\"code\"]"));
        }
        echo.insert("response_types".into(), Value::from(response_types));

        if let Some(scope) = optional_string(request, "scope")? {
            // Unknown scopes are dropped, as in an authorization request (clients copy scope
            // lists from anywhere); the echo says what was kept. A malformed list is refused.
            let scopes = Scopes::parse(scope).map_err(|e| metadata_error(e.description))?;
            let known = match supported {
                Some(supported) => scopes.only_in(supported),
                None => scopes,
            };
            if !known.is_empty() {
                echo.insert("scope".into(), Value::from(known.to_string()));
            }
        }

        let client_name = optional_string(request, "client_name")?
            .map(|name| {
                name.trim()
                    .chars()
                    .take(MAX_CLIENT_NAME_CHARS)
                    .collect::<String>()
            })
            .filter(|name| !name.is_empty());
        if let Some(name) = &client_name {
            echo.insert("client_name".into(), Value::from(name.clone()));
        }

        let mut logo_uri = None;
        for field in ["logo_uri", "client_uri", "tos_uri", "policy_uri"] {
            if let Some(raw) = optional_string(request, field)? {
                let valid = url::Url::parse(raw)
                    .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host());
                if !valid || raw.len() > MAX_URL_LEN {
                    return Err(metadata_error(format!("{field} must be an http(s) URL")));
                }
                if field == "logo_uri" && raw.starts_with("https://") {
                    logo_uri = Some(raw.to_owned());
                }
                echo.insert(field.into(), Value::from(raw));
            }
        }

        if let Some(contacts) = string_list(request, "contacts")? {
            if contacts.len() > MAX_CONTACTS || contacts.iter().any(|c| c.len() > MAX_CONTACT_LEN) {
                return Err(metadata_error("contacts must be at most 20 short strings"));
            }
            echo.insert("contacts".into(), Value::from(contacts));
        }
        for field in ["software_id", "software_version"] {
            if let Some(raw) = optional_string(request, field)? {
                if raw.len() > MAX_SOFTWARE_FIELD_LEN {
                    return Err(metadata_error(format!("{field} is too long")));
                }
                echo.insert(field.into(), Value::from(raw));
            }
        }
        if let Some(kind) = optional_string(request, "application_type")? {
            if kind != "web" && kind != "native" {
                return Err(metadata_error("application_type must be web or native"));
            }
            echo.insert("application_type".into(), Value::from(kind));
        }
        // RFC 9449 §5.2: a client that says so must send a DPoP proof with every token request.
        match request.get("dpop_bound_access_tokens") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(bound)) => {
                echo.insert("dpop_bound_access_tokens".into(), Value::Bool(*bound));
            }
            Some(_) => return Err(metadata_error("dpop_bound_access_tokens must be a boolean")),
        }
        match request.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(object)) => {
                if serde_json::to_string(object).map_or(0, |s| s.len()) > MAX_METADATA_BYTES {
                    return Err(metadata_error("metadata is larger than 8 KiB"));
                }
                echo.insert("metadata".into(), Value::Object(object.clone()));
            }
            Some(_) => return Err(metadata_error("metadata must be a JSON object")),
        }

        Ok(Self {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            client_name,
            logo_uri,
            echo,
        })
    }

    /// The client to store under `client_id`: a confidential client keeps only the hash of
    /// its secret; the accepted fields are kept as its metadata, echoed by the registration
    /// endpoint.
    pub fn into_client(
        self,
        client_id: String,
        client_secret_hash: Option<String>,
        skip_consent: bool,
        now: i64,
    ) -> Client {
        Client {
            client_id,
            client_secret_hash,
            name: self.client_name,
            redirect_uris: self.redirect_uris,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            grant_types: self.grant_types,
            logo_uri: self.logo_uri,
            metadata: Value::Object(self.echo),
            disabled: false,
            skip_consent,
            registered_dynamically: false,
            created_at: now,
        }
    }

    /// Checks the fields of a client an operator creates (`mcpauth client create`) or
    /// configures, by exactly the rules of [`ClientRegistration::parse`]: the fields are put
    /// into a registration request and that request is parsed.
    pub fn from_fields(fields: ClientFields<'_>) -> Result<Self, OAuthError> {
        let mut request = Map::new();
        request.insert(
            "redirect_uris".into(),
            Value::from(fields.redirect_uris.to_vec()),
        );
        request.insert(
            "token_endpoint_auth_method".into(),
            Value::from(fields.token_endpoint_auth_method.as_str()),
        );
        request.insert(
            "grant_types".into(),
            Value::from(
                fields
                    .grant_types
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>(),
            ),
        );
        if let Some(name) = fields.client_name {
            request.insert("client_name".into(), Value::from(name));
        }
        if let Some(logo_uri) = fields.logo_uri {
            request.insert("logo_uri".into(), Value::from(logo_uri));
        }
        if let Some(scope) = fields.scope {
            request.insert("scope".into(), Value::from(scope));
        }
        if !fields.resources.is_empty() {
            request.insert("resources".into(), Value::from(fields.resources.to_vec()));
        }
        if let Some(jwks_uri) = fields.jwks_uri {
            request.insert("jwks_uri".into(), Value::from(jwks_uri));
        }
        if let Some(jwks) = fields.jwks {
            request.insert("jwks".into(), jwks.clone());
        }
        Self::parse_with(&request, None)
    }
}

/// The most keys a registered `jwks` may hold.
pub const MAX_CLIENT_KEYS: usize = 10;

/// The private (and symmetric) members of a JWK (RFC 7518 §6): none may be registered.
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// `jwks` / `jwks_uri` (RFC 7591 §2): a `private_key_jwt` client needs exactly one of them;
/// `jwks` holds public asymmetric keys only. `resources` (mcpauth's own field): the resources
/// a machine client may get tokens for.
fn parse_client_keys(
    request: &Map<String, Value>,
    method: TokenEndpointAuthMethod,
    echo: &mut Map<String, Value>,
) -> Result<(), OAuthError> {
    let jwks_uri = optional_string(request, "jwks_uri")?;
    let jwks = match request.get("jwks") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value),
    };
    if jwks_uri.is_some() && jwks.is_some() {
        return Err(metadata_error("send jwks or jwks_uri, not both"));
    }
    if method == TokenEndpointAuthMethod::PrivateKeyJwt && jwks_uri.is_none() && jwks.is_none() {
        return Err(metadata_error("private_key_jwt needs jwks or jwks_uri"));
    }
    if let Some(raw) = jwks_uri {
        let valid = url::Url::parse(raw).is_ok_and(|u| u.scheme() == "https" && u.has_host());
        if !valid || raw.len() > MAX_URL_LEN {
            return Err(metadata_error("jwks_uri must be an https URL"));
        }
        echo.insert("jwks_uri".into(), Value::from(raw));
    }
    if let Some(jwks) = jwks {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .filter(|keys| !keys.is_empty() && keys.len() <= MAX_CLIENT_KEYS)
            .ok_or_else(|| {
                metadata_error(format!(
                    "jwks must be a JSON Web Key Set of 1 to {MAX_CLIENT_KEYS} keys"
                ))
            })?;
        for key in keys {
            let Some(key) = key.as_object() else {
                return Err(metadata_error("every key of jwks must be a JSON object"));
            };
            let kty = key.get("kty").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kty, "RSA" | "EC" | "OKP") {
                return Err(metadata_error(
                    "jwks may hold only RSA, EC or OKP public keys",
                ));
            }
            if let Some(member) = PRIVATE_JWK_MEMBERS.iter().find(|m| key.contains_key(**m)) {
                return Err(metadata_error(format!(
                    "jwks must hold public keys only (a key has the private member {member:?})"
                )));
            }
        }
        if serde_json::to_string(jwks).map_or(0, |s| s.len()) > MAX_METADATA_BYTES {
            return Err(metadata_error("jwks is larger than 8 KiB"));
        }
        echo.insert("jwks".into(), jwks.clone());
    }
    if let Some(resources) = string_list(request, "resources")? {
        let valid = resources.len() <= MAX_REDIRECT_URIS
            && resources
                .iter()
                .all(|r| r.len() <= MAX_URL_LEN && url::Url::parse(r).is_ok_and(|u| u.has_host()));
        if !valid {
            return Err(metadata_error("resources must be at most 20 absolute URLs"));
        }
        echo.insert("resources".into(), Value::from(resources));
    }
    Ok(())
}

fn parse_redirect_uris(request: &Map<String, Value>) -> Result<Vec<RedirectUri>, OAuthError> {
    let items = match request.get("redirect_uris") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_) | Value::Null) | None => {
            return Err(redirect_error(
                "redirect_uris is required and must list at least one URI",
            ));
        }
        Some(_) => return Err(redirect_error("redirect_uris must be an array of strings")),
    };
    if items.len() > MAX_REDIRECT_URIS {
        return Err(redirect_error(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
        )));
    }
    let mut uris: Vec<RedirectUri> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(raw) = item else {
            return Err(redirect_error("redirect_uris must be an array of strings"));
        };
        let uri = RedirectUri::parse(raw)?;
        if !uris.contains(&uri) {
            uris.push(uri);
        }
    }
    Ok(uris)
}

fn optional_string<'a>(
    request: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, OAuthError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(metadata_error(format!("{field} must be a string"))),
    }
}

fn string_list(
    request: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<String>>, OAuthError> {
    let not_strings = || metadata_error(format!("{field} must be an array of strings"));
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(not_strings()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(not_strings()),
    }
}

/// Why a client from configuration (`trusted_clients`) was refused. The display text is the
/// reason the operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfiguredClientError {
    /// The `client_id` is empty or longer than [`MAX_CLIENT_ID_LEN`].
    #[error("client_id must be 1 to {MAX_CLIENT_ID_LEN} characters")]
    ClientId,
    /// A `token_endpoint_auth_method` other than `none` without a secret.
    #[error("a confidential client needs client_secret")]
    SecretMissing,
    /// A secret with the `none` method, or with a method mcpauth does not support.
    #[error("token_endpoint_auth_method {0:?} does not fit a client with a secret")]
    MethodDoesNotFitSecret(String),
    /// The secret is shorter than [`MIN_CLIENT_SECRET_LEN`].
    #[error("client_secret must be at least {MIN_CLIENT_SECRET_LEN} characters")]
    SecretTooShort,
    /// The client's metadata breaks a registration rule; the description says which.
    #[error("{}", .0.description)]
    Registration(OAuthError),
}

/// Checks the `client_id` of a configured client: 1 to [`MAX_CLIENT_ID_LEN`] bytes.
pub fn check_configured_client_id(client_id: &str) -> Result<(), ConfiguredClientError> {
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_LEN {
        Err(ConfiguredClientError::ClientId)
    } else {
        Ok(())
    }
}

/// How a configured client authenticates: `none` without a secret; with one,
/// `client_secret_basic` unless `client_secret_post` is named. A secret must be at least
/// [`MIN_CLIENT_SECRET_LEN`] long.
pub fn configured_auth_method(
    client_secret: Option<&str>,
    token_endpoint_auth_method: Option<&str>,
) -> Result<TokenEndpointAuthMethod, ConfiguredClientError> {
    let method = match (client_secret, token_endpoint_auth_method) {
        (None, None | Some("none")) => TokenEndpointAuthMethod::None,
        (None, Some("private_key_jwt")) => TokenEndpointAuthMethod::PrivateKeyJwt,
        (None, Some(_)) => return Err(ConfiguredClientError::SecretMissing),
        (Some(_), None) => TokenEndpointAuthMethod::ClientSecretBasic,
        (Some(_), Some(raw)) => match TokenEndpointAuthMethod::parse(raw) {
            Some(TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt) | None => {
                return Err(ConfiguredClientError::MethodDoesNotFitSecret(
                    raw.to_owned(),
                ));
            }
            Some(method) => method,
        },
    };
    if client_secret.is_some_and(|s| s.len() < MIN_CLIENT_SECRET_LEN) {
        return Err(ConfiguredClientError::SecretTooShort);
    }
    Ok(method)
}

/// A client from configuration (SPEC §3 `trusted_clients`), as the operator wrote it.
#[derive(Debug, Clone, Copy)]
pub struct ConfiguredClient<'a> {
    /// The identifier the client will send.
    pub client_id: &'a str,
    /// The secret of a confidential client; `None` for a public client.
    pub client_secret: Option<&'a str>,
    /// `client_secret_basic` (default with a secret) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<&'a str>,
    /// Shown on the consent page.
    pub name: &'a str,
    /// Where the client may be sent back to.
    pub redirect_uris: &'a [String],
    /// An https logo shown on the consent page.
    pub logo_uri: Option<&'a str>,
    /// The grant types; empty: `authorization_code` and `refresh_token`.
    pub grant_types: &'a [GrantType],
    /// For a machine client: the scopes it may be given.
    pub scope: Option<&'a str>,
    /// For a machine client: the resources it may be given tokens for; empty: all.
    pub resources: &'a [String],
    /// `jwks_uri` of a `private_key_jwt` client.
    pub jwks_uri: Option<&'a str>,
    /// `jwks` of a `private_key_jwt` client.
    pub jwks: Option<&'a Value>,
}

impl ConfiguredClient<'_> {
    /// Checks the client: its `client_id` ([`check_configured_client_id`]), its authentication
    /// ([`configured_auth_method`]), then its metadata by the registration rules, with both the
    /// `authorization_code` and `refresh_token` grants.
    pub fn validate(&self) -> Result<ClientRegistration, ConfiguredClientError> {
        check_configured_client_id(self.client_id)?;
        let method = configured_auth_method(self.client_secret, self.token_endpoint_auth_method)?;
        ClientRegistration::from_fields(ClientFields {
            redirect_uris: self.redirect_uris,
            client_name: Some(self.name),
            token_endpoint_auth_method: method,
            grant_types: if self.grant_types.is_empty() {
                &[GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else {
                self.grant_types
            },
            logo_uri: self.logo_uri,
            scope: self.scope,
            resources: self.resources,
            jwks_uri: self.jwks_uri,
            jwks: self.jwks,
        })
        .map_err(ConfiguredClientError::Registration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn supported() -> Scopes {
        Scopes::from_tokens(["openid", "profile", "mcp:tools"])
    }

    fn register(value: Value) -> Result<ClientRegistration, OAuthError> {
        ClientRegistration::parse(&request(value), &supported())
    }

    /// A minimal valid request with `field` set to `value`.
    fn with(field: &str, value: Value) -> Value {
        let mut base = json!({ "redirect_uris": ["https://a.test/cb"] });
        base[field] = value;
        base
    }

    fn refused(value: Value) -> (ErrorCode, String) {
        match register(value) {
            Ok(accepted) => (ErrorCode::ServerError, format!("accepted: {accepted:?}")),
            Err(error) => (error.code, error.description),
        }
    }

    #[test]
    fn defaults_and_echo_of_a_minimal_request() {
        let registration = register(json!({ "redirect_uris": ["https://a.test/cb"] }));
        assert!(registration.is_ok(), "refused: {registration:?}");
        let Ok(registration) = registration else {
            return;
        };
        assert_eq!(
            registration.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(registration.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(registration.client_name, None);
        assert_eq!(registration.logo_uri, None);
        assert_eq!(
            Value::Object(registration.echo),
            json!({
                "redirect_uris": ["https://a.test/cb"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            })
        );
    }

    #[test]
    fn every_accepted_field_is_echoed_normalised() {
        let sent = json!({
            "redirect_uris": ["https://a.test/cb", "http://localhost:3000/cb", "https://a.test/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid  mcp:tools openid",
            "client_name": "  Full Client  ",
            "logo_uri": "https://a.test/logo.png",
            "client_uri": "http://a.test/",
            "tos_uri": "https://a.test/tos",
            "policy_uri": "https://a.test/policy",
            "contacts": ["ops@a.test"],
            "software_id": "sw",
            "software_version": "1.0",
            "application_type": "native",
            "metadata": { "k": "v" },
            "client_id": "chosen-by-the-client",
            "client_secret": "chosen-too",
            "unknown_field": 1,
        });
        let registration = register(sent.clone());
        assert!(registration.is_ok(), "refused: {registration:?}");
        let Ok(registration) = registration else {
            return;
        };
        assert_eq!(
            registration
                .redirect_uris
                .iter()
                .map(RedirectUri::as_str)
                .collect::<Vec<_>>(),
            ["https://a.test/cb", "http://localhost:3000/cb"]
        );
        assert_eq!(
            registration.token_endpoint_auth_method,
            TokenEndpointAuthMethod::None
        );
        assert_eq!(
            registration.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(registration.client_name.as_deref(), Some("Full Client"));
        assert_eq!(
            registration.logo_uri.as_deref(),
            Some("https://a.test/logo.png")
        );
        // Echoed as sent, but normalised; unknown fields are dropped, and so (S22) are a
        // client-chosen client_id and secret.
        let mut expected = request(sent);
        for ignored in ["client_id", "client_secret", "unknown_field"] {
            expected.remove(ignored);
        }
        expected.insert(
            "redirect_uris".into(),
            json!(["https://a.test/cb", "http://localhost:3000/cb"]),
        );
        expected.insert("scope".into(), json!("openid mcp:tools"));
        expected.insert("client_name".into(), json!("Full Client"));
        assert_eq!(registration.echo, expected);
    }

    #[test]
    fn names_are_trimmed_cut_and_blank_ones_dropped() {
        let long = register(with("client_name", Value::from("é".repeat(300))));
        assert_eq!(
            long.ok()
                .and_then(|r| r.client_name)
                .map(|n| n.chars().count()),
            Some(MAX_CLIENT_NAME_CHARS)
        );
        let blank = register(with("client_name", Value::from("   ")));
        assert!(
            blank.is_ok_and(|r| r.client_name.is_none() && !r.echo.contains_key("client_name"))
        );
    }

    #[test]
    fn http_logo_is_echoed_but_not_shown() {
        let registration = register(with("logo_uri", Value::from("http://a.test/logo.png")));
        assert!(
            registration.is_ok_and(|r| r.logo_uri.is_none() && r.echo.contains_key("logo_uri"))
        );
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let registration = register(json!({
            "redirect_uris": ["https://a.test/cb"],
            "token_endpoint_auth_method": "",
            "scope": "",
            "logo_uri": "",
        }));
        assert!(registration.is_ok_and(|r| {
            r.token_endpoint_auth_method == TokenEndpointAuthMethod::ClientSecretBasic
                && !r.echo.contains_key("scope")
                && !r.echo.contains_key("logo_uri")
        }));
    }

    #[test]
    fn redirect_uri_refusals() {
        let uri_error = |description: &str| (ErrorCode::InvalidRedirectUri, description.to_owned());
        let required = "redirect_uris is required and must list at least one URI";
        let not_strings = "redirect_uris must be an array of strings";
        assert_eq!(refused(json!({})), uri_error(required));
        assert_eq!(
            refused(json!({ "redirect_uris": null })),
            uri_error(required)
        );
        assert_eq!(refused(json!({ "redirect_uris": [] })), uri_error(required));
        assert_eq!(
            refused(json!({ "redirect_uris": "https://a.test/cb" })),
            uri_error(not_strings)
        );
        assert_eq!(
            refused(json!({ "redirect_uris": [1] })),
            uri_error(not_strings)
        );
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("https://a.test/{i}"))
            .collect();
        assert_eq!(
            refused(json!({ "redirect_uris": many })),
            uri_error("at most 20 redirect URIs may be registered")
        );
        assert_eq!(
            refused(json!({ "redirect_uris": ["http://evil.test/cb"] })).0,
            ErrorCode::InvalidRedirectUri
        );
    }

    #[test]
    fn unknown_registered_scopes_are_dropped() {
        let supported = Scopes::from_tokens(["openid", "mcp:tools"]);
        let parse = |scope: &str| {
            let mut request = Map::new();
            request.insert("redirect_uris".into(), json!(["https://a.test/cb"]));
            request.insert("scope".into(), json!(scope));
            ClientRegistration::parse(&request, &supported).map(|r| r.echo.get("scope").cloned())
        };
        assert_eq!(parse("openid admin:all").ok(), Some(Some(json!("openid"))));
        assert_eq!(
            parse("admin:all").ok(),
            Some(None),
            "nothing known: no scope"
        );
    }

    #[test]
    fn metadata_refusals() {
        let cases = [
            (
                "token_endpoint_auth_method",
                json!("client_secret_jwt"),
                "token_endpoint_auth_method \"client_secret_jwt\" is not supported; use none, client_secret_basic, client_secret_post or private_key_jwt",
            ),
            (
                "token_endpoint_auth_method",
                json!(1),
                "token_endpoint_auth_method must be a string",
            ),
            (
                "grant_types",
                json!(["authorization_code", "implicit"]),
                "grant type \"implicit\" is not supported; use authorization_code, refresh_token, client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer",
            ),
            (
                "grant_types",
                json!(["refresh_token"]),
                "grant_types must include authorization_code",
            ),
            (
                "grant_types",
                json!([]),
                "grant_types must include authorization_code",
            ),
            (
                "grant_types",
                json!("authorization_code"),
                "grant_types must be an array of strings",
            ),
            (
                "grant_types",
                json!([1]),
                "grant_types must be an array of strings",
            ),
            (
                "response_types",
                json!(["token"]),
                "response_types must be [\"code\"]",
            ),
            (
                "response_types",
                json!([]),
                "response_types must be [\"code\"]",
            ),
            (
                "scope",
                json!("open\"id"),
                "scope \"open\\\"id\" is not a valid scope token",
            ),
            ("client_name", json!(7), "client_name must be a string"),
            (
                "logo_uri",
                json!("javascript:alert(1)"),
                "logo_uri must be an http(s) URL",
            ),
            (
                "client_uri",
                json!("https://"),
                "client_uri must be an http(s) URL",
            ),
            (
                "tos_uri",
                json!(format!("https://a.test/{}", "a".repeat(2048))),
                "tos_uri must be an http(s) URL",
            ),
            (
                "policy_uri",
                json!("/relative"),
                "policy_uri must be an http(s) URL",
            ),
            (
                "contacts",
                json!(vec!["a@a.test"; 21]),
                "contacts must be at most 20 short strings",
            ),
            (
                "contacts",
                json!(["a".repeat(321)]),
                "contacts must be at most 20 short strings",
            ),
            (
                "contacts",
                json!("a@a.test"),
                "contacts must be an array of strings",
            ),
            (
                "software_id",
                json!("a".repeat(201)),
                "software_id is too long",
            ),
            (
                "software_version",
                json!("a".repeat(201)),
                "software_version is too long",
            ),
            (
                "application_type",
                json!("browser"),
                "application_type must be web or native",
            ),
            (
                "metadata",
                json!({ "k": "a".repeat(8192) }),
                "metadata is larger than 8 KiB",
            ),
            (
                "metadata",
                json!(["not", "an", "object"]),
                "metadata must be a JSON object",
            ),
        ];
        for (field, value, description) in cases {
            assert_eq!(
                refused(with(field, value)),
                (ErrorCode::InvalidClientMetadata, description.to_owned())
            );
        }
    }

    fn fields(redirect_uris: &[String]) -> ClientFields<'_> {
        ClientFields {
            redirect_uris,
            client_name: Some("  CLI client "),
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            grant_types: &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            logo_uri: None,
            scope: None,
            resources: &[],
            jwks_uri: None,
            jwks: None,
        }
    }

    #[test]
    fn machine_clients_need_no_redirect_uri_but_a_confidential_method() {
        let request = |extra: Value| {
            let mut body = json!({ "client_name": "CI", "grant_types": ["client_credentials"] });
            if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
                body.extend(extra);
            }
            let Value::Object(map) = body else {
                return Err(metadata_error("not an object"));
            };
            ClientRegistration::parse(&map, &Scopes::default())
        };
        let machine = request(json!({}));
        assert!(
            machine.as_ref().is_ok_and(|r| r.redirect_uris.is_empty()),
            "{machine:?}"
        );
        assert!(request(json!({ "token_endpoint_auth_method": "none" })).is_err());
        // Without a machine grant, authorization_code is still required.
        assert!(request(json!({ "grant_types": ["refresh_token"] })).is_err());
    }

    #[test]
    fn private_key_jwt_needs_public_keys() {
        let request = |extra: Value| {
            let mut body = json!({
                "client_name": "Keyed", "redirect_uris": ["https://a.test/cb"],
                "token_endpoint_auth_method": "private_key_jwt",
            });
            if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
                body.extend(extra);
            }
            let Value::Object(map) = body else {
                return Err(metadata_error("not an object"));
            };
            ClientRegistration::parse(&map, &Scopes::default())
        };
        let public = json!({ "kty": "EC", "crv": "P-256", "x": "x", "y": "y" });
        assert!(request(json!({ "jwks": { "keys": [public] } })).is_ok());
        assert!(request(json!({ "jwks_uri": "https://a.test/jwks" })).is_ok());
        for (extra, why) in [
            (json!({}), "needs jwks"),
            (json!({ "jwks_uri": "http://a.test/jwks" }), "https"),
            (
                json!({ "jwks_uri": "https://a.test/jwks", "jwks": { "keys": [public] } }),
                "not both",
            ),
            (
                json!({ "jwks": { "keys": [{ "kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret" }] } }),
                "private member",
            ),
            (
                json!({ "jwks": { "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] } }),
                "RSA, EC or OKP",
            ),
            (json!({ "jwks": { "keys": [] } }), "1 to"),
        ] {
            let refused = request(extra);
            assert!(
                refused.as_ref().is_err_and(|e| e.description.contains(why)),
                "{why}: {refused:?}"
            );
        }
    }

    #[test]
    fn fields_follow_the_registration_rules() {
        let uris = vec![
            "https://a.test/cb".to_owned(),
            "https://a.test/cb".to_owned(),
        ];
        let created = ClientRegistration::from_fields(fields(&uris));
        assert!(created.is_ok(), "refused: {created:?}");
        let Ok(created) = created else {
            return;
        };
        assert_eq!(created.redirect_uris.len(), 1);
        assert_eq!(created.client_name.as_deref(), Some("CLI client"));
        assert_eq!(
            Value::Object(created.echo),
            json!({
                "redirect_uris": ["https://a.test/cb"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "CLI client",
            })
        );
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("https://a.test/{i}"))
            .collect();
        assert!(ClientRegistration::from_fields(fields(&many)).is_err());
        assert!(ClientRegistration::from_fields(fields(&[])).is_err());
        let bad = ["javascript:alert(1)".to_owned()];
        assert!(ClientRegistration::from_fields(fields(&bad)).is_err());
    }

    fn configured<'a>(
        client_id: &'a str,
        secret: Option<&'a str>,
        method: Option<&'a str>,
        uris: &'a [String],
    ) -> ConfiguredClient<'a> {
        ConfiguredClient {
            client_id,
            client_secret: secret,
            token_endpoint_auth_method: method,
            name: "Trusted",
            redirect_uris: uris,
            logo_uri: Some("https://a.test/logo.png"),
            grant_types: &[],
            scope: None,
            resources: &[],
            jwks_uri: None,
            jwks: None,
        }
    }

    #[test]
    fn configured_clients() {
        let uris = ["https://a.test/cb".to_owned()];
        let secret = "s".repeat(MIN_CLIENT_SECRET_LEN);
        let public = configured("app", None, None, &uris).validate();
        assert!(public.as_ref().is_ok_and(|r| {
            r.token_endpoint_auth_method == TokenEndpointAuthMethod::None
                && r.grant_types == [GrantType::AuthorizationCode, GrantType::RefreshToken]
                && r.client_name.as_deref() == Some("Trusted")
                && r.logo_uri.as_deref() == Some("https://a.test/logo.png")
        }));
        assert!(
            configured("app", None, Some("none"), &uris)
                .validate()
                .is_ok_and(|r| r.token_endpoint_auth_method == TokenEndpointAuthMethod::None)
        );
        assert!(
            configured("app", Some(&secret), None, &uris)
                .validate()
                .is_ok_and(
                    |r| r.token_endpoint_auth_method == TokenEndpointAuthMethod::ClientSecretBasic
                )
        );
        assert!(
            configured("app", Some(&secret), Some("client_secret_post"), &uris)
                .validate()
                .is_ok_and(
                    |r| r.token_endpoint_auth_method == TokenEndpointAuthMethod::ClientSecretPost
                )
        );

        let reason = |client: ConfiguredClient<'_>| {
            client
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            reason(configured("", None, None, &uris)),
            "client_id must be 1 to 200 characters"
        );
        assert_eq!(
            reason(configured(&"a".repeat(201), None, None, &uris)),
            "client_id must be 1 to 200 characters"
        );
        assert!(check_configured_client_id(&"a".repeat(200)).is_ok());
        assert_eq!(
            reason(configured("app", None, Some("client_secret_basic"), &uris)),
            "a confidential client needs client_secret"
        );
        assert_eq!(
            reason(configured("app", Some(&secret), Some("none"), &uris)),
            "token_endpoint_auth_method \"none\" does not fit a client with a secret"
        );
        assert_eq!(
            reason(configured(
                "app",
                Some(&secret),
                Some("private_key_jwt"),
                &uris
            )),
            "token_endpoint_auth_method \"private_key_jwt\" does not fit a client with a secret"
        );
        assert_eq!(
            reason(configured("app", Some("short"), None, &uris)),
            "client_secret must be at least 32 characters"
        );
        assert_eq!(
            reason(configured("app", None, None, &[])),
            "redirect_uris is required and must list at least one URI"
        );
        let bad = ["http://evil.test/cb".to_owned()];
        assert!(reason(configured("app", None, None, &bad)).starts_with("redirect URI "));
    }
}
