//! The built-in pages: sign-in, sign-up, consent, a signed-in home page and the account page.
//! Plain HTML forms that work without JavaScript; every post carries a CSRF token and must come
//! from this origin (SECURITY S25); credential posts answer 303 (S19).

mod account_page;
mod email;
mod sign_in_methods;

pub use account_page::{
    account_page, change_password, revoke_all_sessions, revoke_app, revoke_other_sessions,
};
pub use email::{
    email_verified_page, forgot_password_page, forgot_password_submit, resend_verification_submit,
    reset_password_page, reset_password_submit, verify_email_link, verify_email_submit,
};
pub(crate) use sign_in_methods::unlink_provider;

use askama::Template;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Response};
use mcpauth_core::model::User;
use mcpauth_core::return_to;
use mcpauth_core::{cimd, redirect_uri};

use crate::McpAuth;
use crate::account_api::check_credentials;
use crate::authorize::{decide_consent, pending_consent, resume_authorization};
use crate::authorize::{parse_accept, redirect};
use crate::browser_session::{SignInRefused, browser_session, end_session, start_session};
use crate::errors::PageError;
use crate::params::{params_from_body, read_body};
use crate::password_accounts::AccountError;
use crate::views::{
    self, ConsentPage, HomePage, ScopeView, SignInPage, SignUpPage, describe_scope,
};
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};
use mcpauth_core::Params;

pub(crate) fn render(
    status: StatusCode,
    page: &impl Template,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    let mut response = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) fn see_other(
    location: &str,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    let mut response = redirect(StatusCode::SEE_OTHER, location);
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A form post's parameters, after the CSRF and same-origin checks.
pub(crate) async fn form_post(
    auth: &McpAuth,
    request: Request,
) -> Result<(Parts, Params), PageError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(body)
        .await
        .map_err(|_| PageError::bad_request("The form is too large."))?;
    let params = params_from_body(&parts.headers, &bytes, &[]).map_err(|e| {
        PageError::bad_request(format!("The form could not be read: {}.", e.description))
    })?;
    if !auth
        .site()
        .form_post_allowed(&parts.headers, params.get("csrf_token"))
    {
        return Err(PageError::forbidden_post());
    }
    Ok((parts, params))
}

/// The authorization request a sign-in or sign-up form carries, signed: the hidden field holds
/// only base64url characters (nothing for HTML escaping to change), and cannot be swapped for
/// another request.
fn sealed_query(auth: &McpAuth, query: Option<&str>) -> Option<String> {
    query.map(|q| auth.site().sign_value(FORM_QUERY, q))
}

/// The authorization request from a form's hidden field, if intact.
pub(crate) fn form_query(auth: &McpAuth, params: &Params) -> Option<String> {
    let query = auth
        .site()
        .verify_value(FORM_QUERY, params.get("authorize_query")?)?;
    authorize_query(Some(&query)).map(str::to_owned)
}

const FORM_QUERY: &str = "authorize-form";

/// Only authorization requests are resumed from a sign-in form: a query naming a client.
fn authorize_query(raw: Option<&str>) -> Option<&str> {
    let raw = raw?;
    let params = Params::from_query(Some(raw), &["resource"]).ok()?;
    params.get("client_id").map(|_| raw)
}

async fn client_name(auth: &McpAuth, query: Option<&str>) -> Option<String> {
    let params = Params::from_query(query, &["resource"]).ok()?;
    let client = auth
        .store()
        .client_by_id(params.get("client_id")?)
        .await
        .ok()??;
    client.name.or(Some(client.client_id))
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

// `return_to` (SECURITY S20): where sign-in and sign-out may send the browser afterwards, by
// core's one rule (`return_to::same_origin`).

/// `raw` as a same-origin target, if it is one.
fn same_origin_target(auth: &McpAuth, raw: &str) -> Option<String> {
    return_to::same_origin(raw, &auth.options().issuer)
        .ok()
        .map(|target| target.into_owned())
}

/// The `return_to` of a query string, if it is a same-origin target.
fn return_to_param(auth: &McpAuth, query: Option<&str>) -> Option<String> {
    let params = Params::from_query(query, &["resource"]).ok()?;
    params
        .get("return_to")
        .and_then(|raw| same_origin_target(auth, raw))
}

/// `GET /sign-in`.
pub async fn sign_in_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pending = authorize_query(query.as_deref());
    // An authorization request decides where the browser goes next; otherwise `return_to` may.
    let return_to = match pending {
        Some(_) => None,
        None => return_to_param(&auth, query.as_deref()),
    };
    let mut cookies = Vec::new();
    if pending.is_none() {
        // An ordinary sign-in: whatever authorization request was pending is abandoned.
        if auth
            .site()
            .read_cookie(&headers, AUTHORIZE_COOKIE)
            .is_some()
        {
            cookies.push(auth.site().clear_cookie(AUTHORIZE_COOKIE));
        }
        // `reauth=1` (the console wants a fresh sign-in): the form, even when signed in.
        let reauth = Params::from_query(query.as_deref(), &[])
            .is_ok_and(|params| params.get("reauth") == Some("1"));
        if !reauth && matches!(browser_session(&auth, &headers).await, Ok(Some(_))) {
            return see_other(return_to.as_deref().unwrap_or("/"), cookies);
        }
    }
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    cookies.extend(csrf_cookie);
    let name = client_name(&auth, pending).await;
    let sign_up_href = with_query("/sign-up", pending);
    let sealed = sealed_query(&auth, pending);
    let social_action = auth.endpoint("/sign-in/social");
    let page = SignInPage {
        csrf_token: &csrf,
        authorize_query: sealed.as_deref(),
        error: None,
        email: "",
        client_name: name.as_deref(),
        sign_up_href: &sign_up_href,
        return_to: return_to.as_deref(),
        providers: provider_views(&auth),
        social_action: &social_action,
        password_login: auth.options().password_login,
    };
    render(StatusCode::OK, &page, cookies)
}

/// A sign-in or sign-up form post after the CSRF and same-origin checks: its fields, the
/// address it came from and the authorization request it carries.
struct CredentialPost {
    parts: Parts,
    params: Params,
    ip: String,
    pending: Option<String>,
}

async fn credential_post(auth: &McpAuth, request: Request) -> Result<CredentialPost, Response> {
    let (parts, params) = form_post(auth, request)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(CredentialPost {
        ip: auth.site().client_ip(&parts.headers, &parts.extensions),
        pending: form_query(auth, &params),
        parts,
        params,
    })
}

/// What a sign-in or sign-up page shown again after a refusal carries over: the CSRF token,
/// the client's name, the sealed authorization request and the link to the other page.
struct ShownAgain {
    csrf: String,
    client_name: Option<String>,
    sealed: Option<String>,
    other_page: String,
}

async fn shown_again(
    auth: &McpAuth,
    headers: &HeaderMap,
    pending: Option<&str>,
    other_page: &str,
) -> ShownAgain {
    ShownAgain {
        csrf: auth.site().csrf_token(headers).0,
        client_name: client_name(auth, pending).await,
        sealed: sealed_query(auth, pending),
        other_page: with_query(other_page, pending),
    }
}

/// `POST /sign-in`.
pub async fn sign_in_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params, ip, pending) = match credential_post(&auth, request).await {
        Ok(post) => (post.parts, post.params, post.ip, post.pending),
        Err(response) => return response,
    };
    let pending = pending.as_deref();
    let return_to = match pending {
        Some(_) => None,
        None => params
            .get("return_to")
            .and_then(|raw| same_origin_target(&auth, raw)),
    };
    let email = params.get("email").unwrap_or_default();
    let password = params.get("password").unwrap_or_default();
    match check_credentials(&auth, email, password, &ip).await {
        Ok(user) => {
            signed_in(
                &auth,
                &parts.headers,
                &user,
                &ip,
                pending,
                return_to.as_deref(),
            )
            .await
        }
        Err(error) => {
            let shown = shown_again(&auth, &parts.headers, pending, "/sign-up").await;
            let message = error.to_string();
            let social_action = auth.endpoint("/sign-in/social");
            let page = SignInPage {
                csrf_token: &shown.csrf,
                authorize_query: shown.sealed.as_deref(),
                error: Some(&message),
                email,
                client_name: shown.client_name.as_deref(),
                sign_up_href: &shown.other_page,
                return_to: return_to.as_deref(),
                providers: provider_views(&auth),
                social_action: &social_action,
                password_login: auth.options().password_login,
            };
            render(error.page_status(), &page, [])
        }
    }
}

/// After a successful sign-in or sign-up form: continue the authorization request the form
/// carried, or go to `return_to` (a checked same-origin path), or home. Either way the
/// pending-request cookie is spent.
pub(crate) async fn signed_in(
    auth: &McpAuth,
    headers: &HeaderMap,
    user: &User,
    ip: &str,
    pending: Option<&str>,
    return_to: Option<&str>,
) -> Response {
    let (session, cookie) = match start_session(auth, user, headers, ip).await {
        Ok(started) => started,
        Err(SignInRefused::EmailNotVerified) => {
            return email::unverified_sign_in(auth, headers, &user.email);
        }
        Err(SignInRefused::Disabled) => {
            return PageError::new(
                StatusCode::FORBIDDEN,
                "Account disabled",
                "This account is disabled. Ask the administrator to enable it.",
            )
            .into_response();
        }
        Err(SignInRefused::Store(error)) => return PageError::from(error).into_response(),
    };
    let cookies = [cookie, auth.site().clear_cookie(AUTHORIZE_COOKIE)];
    match pending {
        Some(query) => match resume_authorization(auth, query, &session, user).await {
            Ok(url) => see_other(&url, cookies),
            Err(error) => {
                let mut response = error.into_response();
                for cookie in cookies {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
        },
        None => see_other(return_to.unwrap_or("/"), cookies),
    }
}

/// The "Continue with …" buttons: every configured provider.
fn provider_views(auth: &McpAuth) -> Vec<views::ProviderView> {
    auth.options()
        .identity_providers
        .iter()
        .map(|p| views::ProviderView {
            id: p.id.clone(),
            name: p.name.clone(),
        })
        .collect()
}

/// `GET /sign-up`.
pub async fn sign_up_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pending = authorize_query(query.as_deref());
    if !auth.options().password_login {
        // Accounts come from the identity providers: their buttons are on the sign-in page.
        return see_other(&with_query("/sign-in", pending), []);
    }
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let name = client_name(&auth, pending).await;
    let sign_in_href = with_query("/sign-in", pending);
    let sealed = sealed_query(&auth, pending);
    let page = SignUpPage {
        csrf_token: &csrf,
        authorize_query: sealed.as_deref(),
        error: None,
        email: "",
        name: "",
        client_name: name.as_deref(),
        sign_in_href: &sign_in_href,
        verification_mail: auth.email().sends_verification(),
    };
    render(StatusCode::OK, &page, csrf_cookie)
}

/// `POST /sign-up`.
pub async fn sign_up_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params, ip, pending) = match credential_post(&auth, request).await {
        Ok(post) => (post.parts, post.params, post.ip, post.pending),
        Err(response) => return response,
    };
    let pending = pending.as_deref();
    let email = params.get("email").unwrap_or_default();
    let name = params.get("name").unwrap_or_default();
    let result = match auth
        .limiter()
        .hit(crate::rate_limit::Limit::SignUpPerIp, &ip, auth.now())
        .await
    {
        Err(limited) => Err(AccountError::RateLimited(limited)),
        Ok(()) => {
            auth.create_user(
                email,
                params.get("password").unwrap_or_default(),
                Some(name),
            )
            .await
        }
    };
    match result {
        Ok(user) => {
            let callback = crate::email_flows::sign_up_callback(&auth, pending);
            crate::email_flows::after_sign_up(&auth, &user, &callback);
            if auth.email().verification() == crate::EmailVerification::Required {
                return email::verify_before_signing_in(&auth, &parts.headers, &user.email);
            }
            signed_in(&auth, &parts.headers, &user, &ip, pending, None).await
        }
        Err(error) => {
            let shown = shown_again(&auth, &parts.headers, pending, "/sign-in").await;
            let message = error.to_string();
            let page = SignUpPage {
                csrf_token: &shown.csrf,
                authorize_query: shown.sealed.as_deref(),
                error: Some(&message),
                email,
                name,
                client_name: shown.client_name.as_deref(),
                sign_in_href: &shown.other_page,
                verification_mail: auth.email().sends_verification(),
            };
            render(error.page_status(), &page, [])
        }
    }
}

/// `GET /consent?consent_code=…`.
pub async fn consent_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let user = match browser_session(&auth, &headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return see_other("/sign-in", []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    let Some(consent_code) = params.get("consent_code") else {
        return PageError::bad_request("This page needs a consent_code.").into_response();
    };
    let (pending, client) = match pending_consent(&auth, consent_code, &user).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let redirect_host = redirect_host(pending.redirect_uri.as_str());
    let scopes = pending
        .scopes
        .iter()
        .map(|scope| ScopeView {
            name: scope.to_owned(),
            description: describe_scope(scope),
        })
        .collect();
    let name = client.name.clone().unwrap_or_default();
    let verified_host = cimd::is_document_url(&client.client_id)
        .then(|| cimd::document_host(&client.client_id))
        .flatten();
    let resource_name = auth
        .resource(&pending.resource)
        .map_or(pending.resource.as_str(), |resource| resource.name.as_str());
    let page = ConsentPage {
        csrf_token: &csrf,
        consent_code,
        client_name: &name,
        client_id: &client.client_id,
        logo_uri: client.logo_uri.as_deref(),
        redirect_host: &redirect_host,
        redirect_is_local: redirect_uri::is_loopback(pending.redirect_uri.as_str()),
        every_redirect_is_local: client
            .redirect_uris
            .iter()
            .all(|uri| redirect_uri::is_loopback(uri.as_str())),
        name_is_self_asserted: verified_host.is_none()
            && client.registered_dynamically
            && !name.trim().is_empty(),
        registered_by_operator: verified_host.is_none() && !client.registered_dynamically,
        resource_name,
        resource_uri: &pending.resource,
        verified_host: verified_host.as_deref(),
        scopes,
        user_email: &user.email,
    };
    render(StatusCode::OK, &page, csrf_cookie)
}

/// How the consent page names where the browser goes back to: the host (and port), or the
/// scheme and authority of a private-use URI.
fn redirect_host(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        }
        Ok(url) => match url.host_str() {
            Some(host) => format!("{}://{host}", url.scheme()),
            None => format!("{}:", url.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

/// `POST /consent` with `accept=true|false`.
pub async fn consent_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let user = match browser_session(&auth, &parts.headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return see_other("/sign-in", []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let (Some(code), Some(accept)) = (
        params.get("consent_code"),
        params.get("accept").and_then(parse_accept),
    ) else {
        return PageError::bad_request("Choose Allow or Deny.").into_response();
    };
    match decide_consent(&auth, code, accept, &user).await {
        Ok(url) => see_other(&url, []),
        Err(error) => PageError::bad_request(format!(
            "The approval could not be recorded: {}.",
            error.description
        ))
        .into_response(),
    }
}

/// `GET /`: who is signed in and where to point an MCP client.
pub async fn home_page(State(auth): State<McpAuth>, headers: HeaderMap) -> Response {
    let user = match browser_session(&auth, &headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return see_other("/sign-in", []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let page = HomePage {
        csrf_token: &csrf,
        user_name: &user.name,
        user_email: &user.email,
        mcp_url: &auth.options().resource,
    };
    render(StatusCode::OK, &page, csrf_cookie)
}

/// `POST /sign-out` (form), optionally with a `return_to` path to go to afterwards (S20).
pub async fn sign_out_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = end_session(&auth, &parts.headers).await {
        return PageError::from(error).into_response();
    }
    see_other(
        &params
            .get("return_to")
            .and_then(|raw| same_origin_target(&auth, raw))
            .unwrap_or_else(|| "/sign-in".to_owned()),
        [
            auth.site().clear_cookie(SESSION_COOKIE),
            auth.site().clear_cookie(AUTHORIZE_COOKIE),
        ],
    )
}

/// `GET /assets/mcpauth.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        views::STYLESHEET,
    )
        .into_response()
}
