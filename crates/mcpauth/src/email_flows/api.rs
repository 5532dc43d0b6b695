//! Better Auth's email endpoints, with its JSON shapes: `POST {base}/request-password-reset`
//! (and the older `/forget-password`), `GET {base}/reset-password/{token}` (the mailed link:
//! on to the reset page), `POST {base}/reset-password`, `POST {base}/send-verification-email`
//! and `GET {base}/verify-email` (the mailed verification link; a page for browsers).

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpauth_core::{AccountFieldError, Params, return_to};
use serde_json::json;

use super::ResetError;
use crate::McpAuth;
use crate::authorize::redirect;
use crate::email::{RESET_PAGE, VERIFIED_PAGE, with_param};
use crate::errors::{ApiError, NoStore};
use crate::params::json_params;
use crate::password_accounts::AccountError;

/// Better Auth's answer to a reset request, whatever the address.
const RESET_REQUESTED: &str =
    "If this email exists in our system, check your email for the reset link";

pub(crate) fn invalid_callback(name: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "INVALID_CALLBACK_URL",
        format!("Invalid {name}: only paths or URLs on this server are allowed"),
    )
    .into_response()
}

/// A `redirectTo`/`callbackURL` given in a request: absent → `default`; not on this origin → `Err`.
fn callback_or(auth: &McpAuth, raw: Option<&str>, default: &str) -> Result<String, ()> {
    match raw.filter(|raw| !raw.is_empty()) {
        None => Ok(default.to_owned()),
        Some(raw) => return_to::same_origin(raw, &auth.options().issuer)
            .map(|target| target.into_owned())
            .map_err(|_| ()),
    }
}

/// `POST {base}/request-password-reset` (and `/forget-password`) with `{email, redirectTo?}`:
/// `{status: true, message}` whether or not the address has an account.
pub async fn request_password_reset(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Ok(callback) = callback_or(&auth, params.get("redirectTo"), RESET_PAGE) else {
        return invalid_callback("redirectTo");
    };
    let Some(email) = params.get("email") else {
        return ApiError::bad_request("INVALID_REQUEST", "email is required").into_response();
    };
    let ip = auth.site().client_ip(&headers, &extensions);
    match super::request_password_reset(&auth, email, &callback, &ip).await {
        Ok(()) => NoStore(axum::Json(
            json!({ "status": true, "message": RESET_REQUESTED }),
        ))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET {base}/reset-password/{token}?callbackURL=…`: the mailed link. On to the callback
/// with `?token=…` while the link works, else with `?error=INVALID_TOKEN`; nothing is used up.
pub async fn reset_password_link(
    State(auth): State<McpAuth>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    let Ok(callback) = callback_or(&auth, params.get("callbackURL"), RESET_PAGE) else {
        return invalid_callback("callbackURL");
    };
    let location = match super::reset_link_works(&auth, &token).await {
        Ok(true) => with_param(&callback, "token", &token),
        Ok(false) => with_param(&callback, "error", "INVALID_TOKEN"),
        Err(error) => return ApiError::from(error).into_response(),
    };
    redirect(StatusCode::FOUND, &location)
}

/// `POST {base}/reset-password` with `{newPassword, token}` (the token may also come in the
/// query): `{status: true}`, or 400 `INVALID_TOKEN` / `PASSWORD_TOO_SHORT` / ….
pub async fn reset_password(State(auth): State<McpAuth>, request: Request) -> Response {
    let query_token = Params::from_query(request.uri().query(), &[])
        .ok()
        .and_then(|params| params.get("token").map(str::to_owned));
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(token) = params
        .get("token")
        .map(str::to_owned)
        .or(query_token)
        .filter(|t| !t.is_empty())
    else {
        return ResetError::InvalidToken.into_response();
    };
    let Some(new_password) = params.get("newPassword") else {
        return AccountError::Field(AccountFieldError::PasswordTooShort).into_response();
    };
    let ip = auth.site().client_ip(&headers, &extensions);
    match super::complete_password_reset(&auth, &token, new_password, &ip).await {
        Ok(()) => NoStore(axum::Json(json!({ "status": true }))).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST {base}/send-verification-email` with `{email, callbackURL?}`: `{status: true}`
/// whether or not the address has an account (or is verified already).
pub async fn send_verification_email(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Ok(callback) = callback_or(&auth, params.get("callbackURL"), VERIFIED_PAGE) else {
        return invalid_callback("callbackURL");
    };
    let Some(email) = params.get("email") else {
        return ApiError::bad_request("INVALID_REQUEST", "email is required").into_response();
    };
    let ip = auth.site().client_ip(&headers, &extensions);
    match super::request_verification(&auth, email, &callback, &ip).await {
        Ok(()) => NoStore(axum::Json(json!({ "status": true }))).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Whether a request asks for JSON rather than a page: `Accept` names `application/json` and
/// not `text/html` (an API client), or the browser says it is a script's `fetch`
/// (`Sec-Fetch-Dest: empty`, what Better Auth's client sends). A browser opening a link, and a
/// mail scanner imitating one, asks for a page.
pub(crate) fn wants_json(headers: &axum::http::HeaderMap) -> bool {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let fetch = headers
        .get("sec-fetch-dest")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"empty"));
    fetch || (accept.contains("application/json") && !accept.contains("text/html"))
}

/// The `callbackURL` of a verification link: `None` when absent, `Err` when it is not on this
/// origin (SECURITY S20; answered with [`invalid_callback`]).
pub(crate) fn link_callback(auth: &McpAuth, params: &Params) -> Result<Option<String>, ()> {
    match params.get("callbackURL").filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(raw) => return_to::same_origin(raw, &auth.options().issuer)
            .map(|target| Some(target.into_owned()))
            .map_err(|_| ()),
    }
}

/// `GET {base}/verify-email?token=…&callbackURL=…` for a client asking for JSON (a browser gets
/// a page with a button instead: `pages::verify_email_link`): Better Auth's behaviour — the
/// link is used at once, then on to the callback (with `?error=invalid_token` when the link does
/// not work), or without a callback `{status: true, user: null}` / 401 `INVALID_TOKEN`.
pub async fn verify_email(
    State(auth): State<McpAuth>,
    headers: axum::http::HeaderMap,
    request: Request,
) -> Response {
    let params = Params::from_query(request.uri().query(), &[]).unwrap_or_default();
    let Ok(callback) = link_callback(&auth, &params) else {
        return invalid_callback("callbackURL");
    };
    let token = params.get("token").unwrap_or_default();
    let ip = auth.site().client_ip(&headers, request.extensions());
    let verified = match super::verify_email(&auth, token, &ip).await {
        Ok(verified) => verified,
        Err(error) => return ApiError::from(error).into_response(),
    };
    match (verified, callback) {
        (Some(_), Some(callback)) => redirect(StatusCode::FOUND, &callback),
        (None, Some(callback)) => redirect(
            StatusCode::FOUND,
            &with_param(&callback, "error", "invalid_token"),
        ),
        (Some(_), None) => {
            NoStore(axum::Json(json!({ "status": true, "user": null }))).into_response()
        }
        (None, None) => ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", "invalid_token")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s30_only_api_clients_use_a_verification_link_by_opening_it() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, axum::http::HeaderValue::from_static(value));
            }
            map
        };
        assert!(wants_json(&headers(&[("accept", "application/json")])));
        assert!(wants_json(&headers(&[
            ("accept", "*/*"),
            ("sec-fetch-dest", "empty")
        ])));
        assert!(!wants_json(&headers(&[])));
        assert!(!wants_json(&headers(&[("accept", "*/*")])));
        assert!(!wants_json(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"
        )])));
        assert!(!wants_json(&headers(&[("sec-fetch-dest", "document")])));
    }
}
