//! Dynamic client registration (RFC 7591). Every accepted field is stored and echoed; unknown
//! fields are ignored (§2), a client-chosen `client_id` among them (SECURITY S22).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::{Client, TokenEndpointAuthMethod};
use mcpauth_core::{ErrorCode, OAuthError, RedirectUri, Scopes, StoreError, secret};
use serde_json::{Map, Value};

use crate::McpAuth;
use crate::errors::{NoStore, OAuthJson};
use crate::params::{is_json, read_body};
use crate::rate_limit::Limit;

const MAX_REDIRECT_URIS: usize = 20;

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// `POST {base}/mcp/register`.
pub async fn register_client(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(limited) = auth
        .limiter()
        .hit(Limit::RegisterPerIp, &ip, auth.now())
        .await
    {
        return limited.annotate(OAuthJson::from(limited.error()).into_response());
    }
    match register(&auth, &parts.headers, body).await {
        Ok(body) => NoStore((StatusCode::CREATED, axum::Json(body))).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn register(
    auth: &McpAuth,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<Value, OAuthJson> {
    if !auth.options().allow_dynamic_client_registration {
        return Err(OAuthJson {
            error: OAuthError::new(
                ErrorCode::AccessDenied,
                "dynamic client registration is disabled on this server",
            ),
            basic_challenge: false,
            status: Some(StatusCode::FORBIDDEN),
        });
    }
    if !is_json(headers) {
        return Err(OAuthError::invalid_request("the body must be application/json").into());
    }
    let bytes = read_body(body).await?;
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(metadata_error("the body must be a JSON object").into());
    };
    let registration = Registration::parse(&request, auth.scopes_supported())?;

    let now = auth.now();
    let client_id = secret::random_id();
    let client_secret =
        (registration.auth_method != TokenEndpointAuthMethod::None).then(secret::random_token);
    let mut echoed = registration.echo.clone();
    let client = Client {
        client_id: client_id.clone(),
        client_secret_hash: client_secret.as_deref().map(secret::hash_token),
        name: registration.client_name.clone(),
        redirect_uris: registration.redirect_uris.clone(),
        token_endpoint_auth_method: registration.auth_method,
        grant_types: registration.grant_types.clone(),
        logo_uri: registration.logo_uri.clone(),
        metadata: Value::Object(echoed.clone()),
        disabled: false,
        skip_consent: false,
        created_at: now,
    };
    match auth.store().create_client(&client).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(OAuthError::server_error().into());
        }
        Err(other) => return Err(other.into()),
    }
    echoed.insert("client_id".into(), Value::String(client_id));
    echoed.insert("client_id_issued_at".into(), Value::from(now));
    if let Some(client_secret) = client_secret {
        echoed.insert("client_secret".into(), Value::String(client_secret));
        echoed.insert("client_secret_expires_at".into(), Value::from(0));
    }
    Ok(Value::Object(echoed))
}

/// A validated registration request.
struct Registration {
    redirect_uris: Vec<String>,
    auth_method: TokenEndpointAuthMethod,
    grant_types: Vec<String>,
    client_name: Option<String>,
    logo_uri: Option<String>,
    /// Every accepted field, normalised, as it will be echoed.
    echo: Map<String, Value>,
}

impl Registration {
    fn parse(request: &Map<String, Value>, supported: &Scopes) -> Result<Self, OAuthError> {
        let mut echo = Map::new();

        let redirect_uris = match request.get("redirect_uris") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRedirectUri,
                    "redirect_uris is required and must list at least one URI",
                ));
            }
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRedirectUri,
                    "redirect_uris must be an array of strings",
                ));
            }
        };
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                format!("at most {MAX_REDIRECT_URIS} redirect URIs may be registered"),
            ));
        }
        let mut uris = Vec::with_capacity(redirect_uris.len());
        for item in redirect_uris {
            let Value::String(raw) = item else {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRedirectUri,
                    "redirect_uris must be an array of strings",
                ));
            };
            let uri = RedirectUri::parse(raw)?.into_string();
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        echo.insert("redirect_uris".into(), Value::from(uris.clone()));

        let auth_method = match optional_string(request, "token_endpoint_auth_method")? {
            None => TokenEndpointAuthMethod::ClientSecretBasic,
            Some(raw) => TokenEndpointAuthMethod::parse(raw).ok_or_else(|| {
                metadata_error(format!(
                    "token_endpoint_auth_method {raw:?} is not supported; use none, client_secret_basic or client_secret_post"
                ))
            })?,
        };
        echo.insert(
            "token_endpoint_auth_method".into(),
            Value::from(auth_method.as_str()),
        );

        let grant_types = match string_list(request, "grant_types")? {
            None => vec!["authorization_code".to_owned()],
            Some(list) => list,
        };
        for grant in &grant_types {
            if grant != "authorization_code" && grant != "refresh_token" {
                return Err(metadata_error(format!(
                    "grant type {grant:?} is not supported; use authorization_code and refresh_token"
                )));
            }
        }
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err(metadata_error(
                "grant_types must include authorization_code",
            ));
        }
        echo.insert("grant_types".into(), Value::from(grant_types.clone()));

        let response_types =
            string_list(request, "response_types")?.unwrap_or_else(|| vec!["code".to_owned()]);
        if response_types.iter().any(|r| r != "code") || response_types.is_empty() {
            return Err(metadata_error("response_types must be [\"code\"]"));
        }
        echo.insert("response_types".into(), Value::from(response_types));

        if let Some(scope) = optional_string(request, "scope")? {
            let scopes = Scopes::parse(scope).map_err(|e| metadata_error(e.description))?;
            let unknown: Vec<&str> = scopes.not_in(supported).collect();
            if !unknown.is_empty() {
                return Err(metadata_error(format!(
                    "scope names scopes this server does not support: {}",
                    unknown.join(" ")
                )));
            }
            echo.insert("scope".into(), Value::from(scopes.to_string()));
        }

        let client_name = optional_string(request, "client_name")?
            .map(|name| name.trim().chars().take(200).collect::<String>())
            .filter(|name| !name.is_empty());
        if let Some(name) = &client_name {
            echo.insert("client_name".into(), Value::from(name.clone()));
        }

        let mut logo_uri = None;
        for field in ["logo_uri", "client_uri", "tos_uri", "policy_uri"] {
            if let Some(raw) = optional_string(request, field)? {
                let valid = url::Url::parse(raw)
                    .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host());
                if !valid || raw.len() > 2048 {
                    return Err(metadata_error(format!("{field} must be an http(s) URL")));
                }
                if field == "logo_uri" && raw.starts_with("https://") {
                    logo_uri = Some(raw.to_owned());
                }
                echo.insert(field.into(), Value::from(raw));
            }
        }

        if let Some(contacts) = string_list(request, "contacts")? {
            if contacts.len() > 20 || contacts.iter().any(|c| c.len() > 320) {
                return Err(metadata_error("contacts must be at most 20 short strings"));
            }
            echo.insert("contacts".into(), Value::from(contacts));
        }
        for field in ["software_id", "software_version"] {
            if let Some(raw) = optional_string(request, field)? {
                if raw.len() > 200 {
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
        match request.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(object)) => {
                if serde_json::to_string(object).map_or(0, |s| s.len()) > 8192 {
                    return Err(metadata_error("metadata is larger than 8 KiB"));
                }
                echo.insert("metadata".into(), Value::Object(object.clone()));
            }
            Some(_) => return Err(metadata_error("metadata must be a JSON object")),
        }

        Ok(Self {
            redirect_uris: uris,
            auth_method,
            grant_types,
            client_name,
            logo_uri,
            echo,
        })
    }
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
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(metadata_error(format!(
                    "{field} must be an array of strings"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(metadata_error(format!(
            "{field} must be an array of strings"
        ))),
    }
}
