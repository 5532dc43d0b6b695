//! The authorization endpoint (OAuth 2.1 §4.1.1, RFC 6749 §4.1, RFC 7636, RFC 8707, RFC 9207,
//! OIDC Core §3.1.2) and the consent decision.
//!
//! Validate first, redirect second: until the client and its redirect URI are known good, every
//! error is an HTML page and never a redirect (SECURITY S2). After that, errors go back to the
//! client's redirect URI with `error`, `error_description`, `state` and `iss` (S10, S11).

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::{
    AuthorizationCode, Client, Consent, PendingAuthorization, Session, TokenFamily, User,
};
use mcpauth_core::{ErrorCode, OAuthError, Scopes, pkce, redirect_uri, secret};
use serde_json::json;

use crate::McpAuth;
use crate::account::{browser_session, pending_authorization_cookie};
use crate::errors::{ApiError, NoStore, PageError};
use crate::params::{Params, read_body};

/// Where an authorization request leads.
pub enum Outcome {
    /// Send the browser here: the client's redirect URI (with a code or an error) or the
    /// consent page.
    Redirect(String),
    /// The user must sign in first; the request (without `prompt=login`) resumes afterwards.
    Login { resume_query: String },
}

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Debug, Default, Clone, Copy)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

/// An authorization request whose client and redirect URI have been checked.
struct Validated {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
}

/// Runs the authorization endpoint's logic for a query string and the browser's session.
pub(crate) async fn authorize(
    auth: &McpAuth,
    query: &str,
    session: Option<&(Session, User)>,
) -> Result<Outcome, PageError> {
    let params = Params::from_query(Some(query), &["resource"]).map_err(|e| {
        PageError::bad_request(format!(
            "The authorization request is malformed: {}.",
            e.description
        ))
    })?;
    let validated = validate_client(auth, &params).await?;
    match authorize_validated(auth, &params, &validated, session).await {
        Ok(outcome) => Ok(outcome),
        Err(error) => Ok(Outcome::Redirect(error_redirect(
            auth,
            &validated.redirect_uri,
            &error,
            validated.state.as_deref(),
        ))),
    }
}

async fn validate_client(auth: &McpAuth, params: &Params) -> Result<Validated, PageError> {
    let client_id = params.get("client_id").ok_or_else(|| {
        PageError::bad_request("The authorization request names no client (client_id is missing).")
    })?;
    let client = auth
        .client(client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(|| {
            PageError::bad_request(
                "The application that sent you here is not registered with this server.",
            )
        })?;
    let redirect_uri = match params.get("redirect_uri") {
        Some(requested) => {
            if !client
                .redirect_uris
                .iter()
                .any(|registered| redirect_uri::matches(registered, requested))
            {
                return Err(PageError::bad_request(
                    "The redirect URI in this request is not registered for the application. \
                     You were not sent back to it.",
                ));
            }
            requested.to_owned()
        }
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(PageError::bad_request(
                    "The authorization request has no redirect_uri, and the application registered several.",
                ));
            }
        },
    };
    Ok(Validated {
        state: params.get("state").map(str::to_owned),
        client,
        redirect_uri,
    })
}

async fn authorize_validated(
    auth: &McpAuth,
    params: &Params,
    validated: &Validated,
    session: Option<&(Session, User)>,
) -> Result<Outcome, OAuthError> {
    let options = &auth.options();
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use code"),
            ));
        }
        None => return Err(OAuthError::invalid_request("response_type is required")),
    }
    if let Some(mode) = params.get("response_mode")
        && mode != "query"
    {
        return Err(OAuthError::invalid_request("response_mode must be query"));
    }
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "request objects are not supported",
        ));
    }
    let client = &validated.client;
    let code_challenge = match params.get("code_challenge") {
        Some(challenge) => {
            pkce::validate_challenge(challenge, params.get("code_challenge_method"))?;
            Some(challenge.to_owned())
        }
        None if client.is_public() || options.require_pkce_for_confidential => {
            return Err(OAuthError::invalid_request(
                "code_challenge is required (PKCE with S256)",
            ));
        }
        None => None,
    };
    let scopes = match params.get("scope") {
        Some(raw) => Scopes::parse(raw)?,
        None => Scopes::default(),
    };
    let scopes = if scopes.is_empty() {
        auth.default_scope().clone()
    } else {
        scopes
    };
    let unknown: Vec<&str> = scopes.not_in(auth.scopes_supported()).collect();
    if !unknown.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "unknown scope: {}",
            unknown.join(" ")
        )));
    }
    let resource = requested_resource(auth, &params.all("resource"))?;
    let prompt = parse_prompt(params.get("prompt"))?;
    let max_age =
        match params.get("max_age") {
            Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
                OAuthError::invalid_request("max_age must be a non-negative integer")
            })?),
            None => None,
        };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(OAuthError::invalid_request("nonce is too long"));
    }

    let now = auth.now();
    let fresh_session = session.filter(|(s, _)| {
        !prompt.login && max_age.is_none_or(|max| now - s.auth_time <= i64::from(max))
    });
    let Some((session, user)) = fresh_session else {
        if prompt.none {
            return Err(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not signed in",
            ));
        }
        return Ok(Outcome::Login {
            resume_query: resume_query(params),
        });
    };

    let request = PendingAuthorization {
        user_id: user.id.clone(),
        session_id: session.id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: validated.redirect_uri.clone(),
        scopes: scopes.to_string(),
        state: validated.state.clone(),
        code_challenge,
        resource,
        nonce,
        auth_time: session.auth_time,
    };

    let consented = if client.skip_consent {
        true
    } else if prompt.consent {
        false
    } else {
        let existing = auth.store().consent(&user.id, &client.client_id).await?;
        existing.is_some_and(|c| {
            Scopes::parse(&c.scopes).is_ok_and(|granted| scopes.is_subset_of(&granted))
        })
    };
    if consented {
        return Ok(Outcome::Redirect(issue_code(auth, &request).await?));
    }
    if prompt.none {
        return Err(OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not approved this application",
        ));
    }
    let consent_code = secret::random_token();
    let value = serde_json::to_string(&request).map_err(|_| OAuthError::server_error())?;
    auth.store()
        .put_verification(
            &consent_identifier(&consent_code),
            &value,
            now + auth.options().code_expires_in,
            now,
        )
        .await?;
    let mut url = auth.options().consent_page.clone();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("consent_code", &consent_code)
            .append_pair("client_id", &client.client_id)
            .append_pair("scope", &request.scopes)
            .finish(),
    );
    Ok(Outcome::Redirect(url))
}

/// RFC 8707: the resource the token will be for. Absent means the configured resource
/// (clients do not always send it); anything else is `invalid_target`.
pub(crate) fn requested_resource(auth: &McpAuth, requested: &[&str]) -> Result<String, OAuthError> {
    let ours = &auth.options().resource;
    if requested.iter().all(|r| r == ours) {
        Ok(ours.clone())
    } else {
        Err(OAuthError::invalid_target(format!(
            "this server issues tokens only for the resource {ours}"
        )))
    }
}

/// Stores a code for an approved request; returns the redirect that carries it.
async fn issue_code(auth: &McpAuth, request: &PendingAuthorization) -> Result<String, OAuthError> {
    let now = auth.now();
    let code = secret::random_token();
    let family = TokenFamily {
        id: secret::random_id(),
        client_id: request.client_id.clone(),
        user_id: request.user_id.clone(),
        scopes: request.scopes.clone(),
        resource: request.resource.clone(),
        created_at: now,
        expires_at: now + auth.options().refresh_family_lifetime,
        revoked_at: None,
    };
    let record = AuthorizationCode {
        code_hash: secret::hash_token(&code),
        client_id: request.client_id.clone(),
        user_id: request.user_id.clone(),
        session_id: request.session_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scopes: request.scopes.clone(),
        code_challenge: request.code_challenge.clone(),
        resource: request.resource.clone(),
        nonce: request.nonce.clone(),
        auth_time: request.auth_time,
        family_id: family.id.clone(),
        expires_at: now + auth.options().code_expires_in,
        created_at: now,
    };
    auth.store().create_code(&record, &family).await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &auth.options().issuer));
    Ok(append_query(&request.redirect_uri, &pairs))
}

/// The client's redirect URI carrying an error (RFC 6749 §4.1.2.1, RFC 9207).
fn error_redirect(
    auth: &McpAuth,
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
) -> String {
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_str()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &auth.options().issuer));
    append_query(redirect_uri, &pairs)
}

/// Continues a remembered authorization request after the user signed in.
pub(crate) async fn resume_authorization(
    auth: &McpAuth,
    query: &str,
    session: &Session,
    user: &User,
) -> Result<String, PageError> {
    let pair = (session.clone(), user.clone());
    match authorize(auth, query, Some(&pair)).await? {
        Outcome::Redirect(url) => Ok(url),
        Outcome::Login { .. } => Err(PageError::bad_request(
            "The authorization request could not be continued after signing in.",
        )),
    }
}

/// The request waiting on the consent page, for the signed-in user it belongs to.
pub(crate) async fn pending_consent(
    auth: &McpAuth,
    consent_code: &str,
    user: &User,
) -> Result<(PendingAuthorization, Client), PageError> {
    let expired = || {
        PageError::bad_request(
            "This approval request has expired or was already answered. Go back to the application and try again.",
        )
    };
    let value = auth
        .store()
        .peek_verification(&consent_identifier(consent_code), auth.now())
        .await?
        .ok_or_else(expired)?;
    let pending: PendingAuthorization = serde_json::from_str(&value).map_err(|_| expired())?;
    if pending.user_id != user.id {
        return Err(expired());
    }
    let client = auth
        .store()
        .client_by_id(&pending.client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(expired)?;
    Ok((pending, client))
}

/// Applies the user's decision on a consent request; returns where the browser goes next.
pub(crate) async fn decide_consent(
    auth: &McpAuth,
    consent_code: &str,
    accept: bool,
    user: &User,
) -> Result<String, OAuthError> {
    let now = auth.now();
    let identifier = consent_identifier(consent_code);
    let gone =
        || OAuthError::invalid_request("the consent request has expired or was already answered");
    // Check the owner before spending the code, so nobody else can cancel it.
    let owner = auth
        .store()
        .peek_verification(&identifier, now)
        .await?
        .and_then(|value| serde_json::from_str::<PendingAuthorization>(&value).ok())
        .ok_or_else(gone)?;
    if owner.user_id != user.id {
        return Err(OAuthError::invalid_request(
            "the consent request belongs to another user",
        ));
    }
    let value = auth
        .store()
        .take_verification(&identifier, now)
        .await?
        .ok_or_else(gone)?;
    let pending: PendingAuthorization = serde_json::from_str(&value)
        .map_err(|_| OAuthError::invalid_request("the consent request is not valid"))?;
    auth.audit(
        if accept {
            "consent.granted"
        } else {
            "consent.denied"
        },
        Some(&user.id),
        Some(&pending.client_id),
        None,
        json!({ "scope": pending.scopes }),
    )
    .await;
    if !accept {
        return Ok(error_redirect(
            auth,
            &pending.redirect_uri,
            &OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
            pending.state.as_deref(),
        ));
    }
    let requested = Scopes::parse(&pending.scopes)?;
    let previous = auth.store().consent(&user.id, &pending.client_id).await?;
    let granted = match &previous {
        Some(c) => Scopes::parse(&c.scopes)
            .unwrap_or_default()
            .union(&requested),
        None => requested,
    };
    auth.store()
        .save_consent(&Consent {
            user_id: user.id.clone(),
            client_id: pending.client_id.clone(),
            scopes: granted.to_string(),
            created_at: previous.map_or(now, |c| c.created_at),
            updated_at: now,
        })
        .await?;
    issue_code(auth, &pending).await
}

fn consent_identifier(consent_code: &str) -> String {
    format!("consent:{}", secret::hash_token(consent_code))
}

fn parse_prompt(raw: Option<&str>) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    for value in raw.unwrap_or_default().split_ascii_whitespace() {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            other => {
                return Err(OAuthError::invalid_request(format!(
                    "prompt value {other:?} is not supported"
                )));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

/// The request to resume after sign-in: the same parameters, without `prompt=login` (the user
/// has just signed in; asking again would loop).
fn resume_query(params: &Params) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in params.pairs() {
        if key == "prompt" {
            let rest: Vec<&str> = value
                .split_ascii_whitespace()
                .filter(|p| *p != "login")
                .collect();
            if !rest.is_empty() {
                out.append_pair(key, &rest.join(" "));
            }
        } else {
            out.append_pair(key, value);
        }
    }
    out.finish()
}

/// Appends query parameters to a URI that may already have a query.
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{encoded}")
}

/// `GET {base}/mcp/authorize`.
pub async fn authorize_endpoint(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let session = match browser_session(&auth, &headers).await {
        Ok(session) => session,
        Err(error) => return PageError::from(error).into_response(),
    };
    match authorize(
        &auth,
        query.as_deref().unwrap_or_default(),
        session.as_ref(),
    )
    .await
    {
        Ok(Outcome::Redirect(url)) => redirect(StatusCode::FOUND, &url),
        Ok(Outcome::Login { resume_query }) => {
            let login = &auth.options().login_page;
            let separator = if login.contains('?') { '&' } else { '?' };
            let mut response = redirect(
                StatusCode::FOUND,
                &format!("{login}{separator}{resume_query}"),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                pending_authorization_cookie(&auth, &resume_query),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}

/// A redirect response to `location`.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = status.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => PageError::bad_request("The redirect target is not a valid URL.").into_response(),
    }
}

/// `POST {base}/oauth2/consent` with `{accept, consent_code}` (Better Auth compatible): answers
/// `{redirectURI}` for the consent page to navigate to.
pub async fn consent_api(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !auth.site().same_origin(&parts.headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "INVALID_ORIGIN",
            "requests from other sites are not accepted",
        )
        .into_response();
    }
    let user = match browser_session(&auth, &parts.headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "sign in first")
                .into_response();
        }
        Err(error) => return ApiError::from(error).into_response(),
    };
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let params = match Params::from_body(&parts.headers, &bytes, &[]) {
        Ok(params) => params,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let (Some(code), Some(accept)) = (
        params.get("consent_code"),
        params.get("accept").and_then(parse_accept),
    ) else {
        return ApiError::bad_request(
            "INVALID_REQUEST",
            "consent_code and accept (true or false) are required",
        )
        .into_response();
    };
    match decide_consent(&auth, code, accept, &user).await {
        Ok(url) => {
            NoStore(axum::Json(json!({ "redirectURI": url, "redirect": true }))).into_response()
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `accept=true|false`.
pub(crate) fn parse_accept(raw: &str) -> Option<bool> {
    match raw {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
