//! Accounts and browser sessions: sign-up, sign-in and sign-out, the session cookie, and the
//! Better Auth–compatible JSON API (`{base}/sign-up/email`, `/sign-in/email`, `/sign-out`,
//! `/get-session`). Passwords are argon2id; unknown emails cost the same time as wrong
//! passwords (SECURITY S26).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::Email;
use mcpauth_core::model::User;
use serde_json::{Value, json};

use crate::McpAuth;
use crate::authorize::resume_authorization;
use crate::browser_session::{
    SignInRefused, browser_session, end_session, pending_authorization, start_session,
};
use crate::email::EmailVerification;
use crate::errors::{ApiError, NoStore};
use crate::params::json_params;
use crate::password_accounts::AccountError;
use crate::rate_limit::Limit;
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};

/// Checks an email and password, with the per-address and per-account limits.
pub(crate) async fn check_credentials(
    auth: &McpAuth,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<User, AccountError> {
    if !auth.options().password_login {
        return Err(AccountError::PasswordLoginDisabled);
    }
    let now = auth.now();
    let limiter = &auth.limiter();
    limiter
        .hit(Limit::SignInPerIp, ip, now)
        .await
        .map_err(AccountError::RateLimited)?;
    let email = Email::parse(email)
        .map_err(|_| AccountError::InvalidCredentials)?
        .into_string();
    // An account under attack stays locked for the window, even for the right password:
    // otherwise the limit would only slow the guesser down, not stop the lucky guess.
    limiter
        .check(Limit::SignInPerAccount, &email, now)
        .await
        .map_err(AccountError::RateLimited)?;
    let found = auth.store().user_by_email(&email).await?;
    let (user, hash) = match found {
        Some((user, hash)) if !user.disabled => (Some(user), hash),
        _ => (None, None),
    };
    let matches = auth.accounts().verify_password(password, hash).await;
    match user {
        Some(user) if matches => {
            auth.audit(
                "sign_in.success",
                Some(&user.id),
                None,
                Some(ip),
                Value::Null,
            )
            .await;
            Ok(user)
        }
        other => {
            auth.audit(
                "sign_in.failure",
                other.as_ref().map(|u| u.id.as_str()),
                None,
                Some(ip),
                json!({ "known_account": other.is_some() }),
            )
            .await;
            limiter
                .hit(Limit::SignInPerAccount, &email, now)
                .await
                .map_err(AccountError::RateLimited)?;
            Err(AccountError::InvalidCredentials)
        }
    }
}

pub(crate) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "emailVerified": user.email_verified,
        "image": user.image,
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
    })
}

/// `POST {base}/sign-up/email` with `{email, password, name}`.
pub async fn sign_up_email(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let ip = auth.site().client_ip(&headers, &extensions);
    if let Err(limited) = auth
        .limiter()
        .hit(Limit::SignUpPerIp, &ip, auth.now())
        .await
    {
        return AccountError::RateLimited(limited).into_response();
    }
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return ApiError::bad_request("INVALID_REQUEST", "email and password are required")
            .into_response();
    };
    // Better Auth's `callbackURL`: where the verification link leads (this origin only).
    let callback = match params.get("callbackURL").filter(|c| !c.is_empty()) {
        None => crate::email::VERIFIED_PAGE.to_owned(),
        Some(raw) => match mcpauth_core::return_to::same_origin(raw, &auth.options().issuer) {
            Ok(target) => target.into_owned(),
            Err(_) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "INVALID_CALLBACK_URL",
                    "Invalid callbackURL: only paths or URLs on this server are allowed",
                )
                .into_response();
            }
        },
    };
    let user = match auth.create_user(email, password, params.get("name")).await {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    crate::email_flows::after_sign_up(&auth, &user, &callback);
    if auth.email().verification() == EmailVerification::Required {
        // Better Auth's answer when verification is required: no session until verified.
        return NoStore(axum::Json(
            json!({ "token": null, "user": user_json(&user) }),
        ))
        .into_response();
    }
    signed_in_response(&auth, &user, &headers, &ip).await
}

/// `POST {base}/sign-in/email` with `{email, password}`. When the browser carries a pending
/// authorization request, the answer says where to continue: `{redirect: true, url}`.
pub async fn sign_in_email(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let ip = auth.site().client_ip(&headers, &extensions);
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return ApiError::bad_request("INVALID_REQUEST", "email and password are required")
            .into_response();
    };
    match check_credentials(&auth, email, password, &ip).await {
        Ok(user) => signed_in_response(&auth, &user, &headers, &ip).await,
        Err(error) => error.into_response(),
    }
}

async fn signed_in_response(
    auth: &McpAuth,
    user: &User,
    headers: &HeaderMap,
    ip: &str,
) -> Response {
    let (session, cookie) = match start_session(auth, user, headers, ip).await {
        Ok(started) => started,
        Err(SignInRefused::EmailNotVerified) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "EMAIL_NOT_VERIFIED",
                "Email not verified",
            )
            .into_response();
        }
        Err(SignInRefused::Disabled) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "USER_DISABLED",
                "this account is disabled",
            )
            .into_response();
        }
        Err(SignInRefused::Store(error)) => return ApiError::from(error).into_response(),
    };
    let mut body = json!({ "redirect": false, "token": null, "user": user_json(user) });
    let pending = pending_authorization(auth, headers);
    if let Some(query) = &pending {
        match resume_authorization(auth, query, &session, user).await {
            Ok(url) => {
                body["redirect"] = Value::Bool(true);
                body["url"] = Value::String(url);
            }
            Err(error) => {
                tracing::debug!(message = %error.message, "pending authorization not resumed");
            }
        }
    }
    let mut response = NoStore((StatusCode::OK, axum::Json(body))).into_response();
    let response_headers = response.headers_mut();
    response_headers.append(header::SET_COOKIE, cookie);
    if pending.is_some() {
        response_headers.append(
            header::SET_COOKIE,
            auth.site().clear_cookie(AUTHORIZE_COOKIE),
        );
    }
    response
}

/// `POST {base}/sign-out`.
pub async fn sign_out(State(auth): State<McpAuth>, request: Request) -> Response {
    let headers = request.headers();
    if !auth.site().same_origin(headers) {
        return ApiError::cross_origin().into_response();
    }
    if let Err(error) = end_session(&auth, headers).await {
        return ApiError::from(error).into_response();
    }
    let mut response = axum::Json(json!({ "success": true })).into_response();
    let response_headers = response.headers_mut();
    response_headers.append(header::SET_COOKIE, auth.site().clear_cookie(SESSION_COOKIE));
    response_headers.append(
        header::SET_COOKIE,
        auth.site().clear_cookie(AUTHORIZE_COOKIE),
    );
    response
}

/// `GET {base}/get-session`: the browser's session and user, or `null`.
pub async fn get_session(State(auth): State<McpAuth>, headers: HeaderMap) -> Response {
    let body = match browser_session(&auth, &headers).await {
        Ok(Some((session, user))) => json!({
            "session": {
                "id": session.id,
                "userId": session.user_id,
                "expiresAt": session.expires_at,
                "createdAt": session.created_at,
            },
            "user": user_json(&user),
        }),
        Ok(None) => Value::Null,
        Err(error) => return ApiError::from(error).into_response(),
    };
    NoStore(axum::Json(body)).into_response()
}
