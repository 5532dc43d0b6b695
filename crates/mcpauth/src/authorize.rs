//! The authorization endpoint (OAuth 2.1 §4.1.1, RFC 6749 §4.1, RFC 7636, RFC 8707, RFC 9207,
//! OIDC Core §3.1.2) and the consent decision.
//!
//! Validate first, redirect second: until the client and its redirect URI are known good, every
//! error is an HTML page and never a redirect (SECURITY S2). After that, errors go back to the
//! client's redirect URI with `error`, `error_description`, `state` and `iss` (S10, S11).

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::authorization_request::{self, resolve_redirect_uri};
use mcpauth_core::model::{
    AuthorizationCode, Client, Consent, PendingAuthorization, Session, TokenFamily, User,
};
use mcpauth_core::{AuthorizationRequest, OAuthError, RedirectUri, secret};
use serde_json::json;

use crate::McpAuth;
use crate::browser_session::{browser_session, pending_authorization_cookie};
use crate::errors::{ApiError, NoStore, PageError};
use crate::params::{params_from_body, read_body};
use mcpauth_core::Params;

/// Where an authorization request leads.
pub enum Outcome {
    /// Send the browser here: the client's redirect URI (with a code or an error) or the
    /// consent page.
    Redirect(String),
    /// The user must sign in first; the request (without `prompt=login`) resumes afterwards.
    Login { resume_query: String },
}

/// An authorization request whose client and redirect URI have been checked.
struct Validated {
    client: Client,
    redirect_uri: RedirectUri,
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
        Err(error) => Ok(Outcome::Redirect(authorization_request::error_redirect(
            validated.redirect_uri.as_str(),
            &error,
            validated.state.as_deref(),
            &auth.options().issuer,
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
    let redirect_uri = resolve_redirect_uri(&client.redirect_uris, params.get("redirect_uri"))
        .map_err(|refusal| PageError::bad_request(refusal.to_string()))?;
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
    let client = &validated.client;
    let checked =
        AuthorizationRequest::parse(params, auth.authorization_policy(), client.is_public())?;
    let now = auth.now();
    let fresh_session = session.filter(|(s, _)| checked.session_is_fresh(s.auth_time, now));
    let Some((session, user)) = fresh_session else {
        if checked.prompt.none() {
            return Err(authorization_request::login_required());
        }
        return Ok(Outcome::Login {
            resume_query: authorization_request::resume_query(params),
        });
    };

    // A client that skips consent still needs the user's explicit approval for a consent
    // scope (`consent_scopes`, e.g. `mcp:admin`): a stored consent covering it is one.
    let explicit = checked.needs_explicit_consent(auth.authorization_policy());
    let request = PendingAuthorization {
        user_id: user.id.clone(),
        session_id: session.id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: validated.redirect_uri.clone(),
        scopes: checked.scopes,
        state: validated.state.clone(),
        code_challenge: checked.code_challenge,
        resource: checked.resource,
        nonce: checked.nonce,
        auth_time: session.auth_time,
    };

    let consented = if client.skip_consent && !explicit {
        true
    } else if checked.prompt.consent() {
        false
    } else {
        let existing = auth.store().consent(&user.id, &client.client_id).await?;
        existing.is_some_and(|c| request.scopes.is_subset_of(&c.scopes))
    };
    if consented {
        return Ok(Outcome::Redirect(issue_code(auth, &request).await?));
    }
    if checked.prompt.none() {
        return Err(authorization_request::consent_required());
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
    Ok(Outcome::Redirect(authorization_request::append_query(
        &auth.options().consent_page,
        &[
            ("consent_code", &consent_code),
            ("client_id", &client.client_id),
            ("scope", &request.scopes.to_string()),
        ],
    )))
}

/// Stores a code for an approved request; returns the redirect that carries it.
async fn issue_code(auth: &McpAuth, request: &PendingAuthorization) -> Result<String, OAuthError> {
    let now = auth.now();
    let code = secret::ordered_token();
    let family = TokenFamily {
        // In time order: the family's key is in the index of its codes and tokens as well.
        id: secret::ordered_id(),
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
    Ok(authorization_request::code_redirect(
        request.redirect_uri.as_str(),
        &code,
        request.state.as_deref(),
        &auth.options().issuer,
    ))
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
        json!({ "scope": pending.scopes.to_string() }),
    )
    .await;
    if !accept {
        return Ok(authorization_request::error_redirect(
            pending.redirect_uri.as_str(),
            &authorization_request::access_denied(),
            pending.state.as_deref(),
            &auth.options().issuer,
        ));
    }
    let previous = auth.store().consent(&user.id, &pending.client_id).await?;
    let granted = match &previous {
        Some(c) => c.scopes.union(&pending.scopes),
        None => pending.scopes.clone(),
    };
    auth.store()
        .save_consent(&Consent {
            user_id: user.id.clone(),
            client_id: pending.client_id.clone(),
            scopes: granted,
            created_at: previous.map_or(now, |c| c.created_at),
            updated_at: now,
        })
        .await?;
    issue_code(auth, &pending).await
}

fn consent_identifier(consent_code: &str) -> String {
    format!("consent:{}", secret::hash_token(consent_code))
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
        return ApiError::cross_origin().into_response();
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
    let params = match params_from_body(&parts.headers, &bytes, &[]) {
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
