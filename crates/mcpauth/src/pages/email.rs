//! The pages of password reset and email verification (SECURITY S30): "forgot password"
//! (linked from sign-in), "choose a new password" (the mailed reset link opens it), "verify
//! your email" (the mailed verification link opens it: its button, not the visit, uses the
//! link up, so that a mail scanner opening links does not spend it), "check your email",
//! "email verified", the page for an expired or used link, and the one a sign-in of an
//! unverified account gets when verification is required. Forms carry the CSRF token and must
//! come from this origin (S25); the answers to a mail request are the same whether or not the
//! address has an account.

use askama::Template;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpauth_core::{Params, return_to};

use super::{form_post, render, see_other};
use crate::McpAuth;
use crate::authorize::redirect;
use crate::email::{RESET_PAGE, VERIFIED_PAGE, with_param};
use crate::email_flows::api as email_api;
use crate::email_flows::{
    self as email, MailRequestError, ResetError, request_password_reset, request_verification,
};
use crate::errors::{PageError, sentence};
use crate::password_accounts::MIN_PASSWORD;
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};

/// `GET /forgot-password`.
#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPasswordPage<'a> {
    csrf_token: &'a str,
    /// Whether mail can be sent at all; otherwise the page says to ask an administrator.
    available: bool,
    error: Option<&'a str>,
    email: &'a str,
}

/// The form the mailed reset link opens.
#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPasswordPage<'a> {
    csrf_token: &'a str,
    token: &'a str,
    error: Option<&'a str>,
    min_password: usize,
    revokes_apps: bool,
}

/// The form of a notice: one button, with hidden fields (and an email field when
/// `ask_email`).
struct NoticeForm<'a> {
    action: &'a str,
    csrf_token: &'a str,
    hidden: Vec<(&'a str, &'a str)>,
    ask_email: bool,
    button: &'a str,
}

/// "Check your email", "Email verified", an expired link, "verify your email first".
#[derive(Template)]
#[template(path = "email_notice.html")]
struct NoticePage<'a> {
    title: &'a str,
    message: &'a str,
    /// An alert rather than a confirmation.
    is_error: bool,
    detail: Option<&'a str>,
    form: Option<NoticeForm<'a>>,
    /// (href, text) of the link under it.
    link: Option<(&'a str, &'a str)>,
}

const RESEND_ACTION: &str = "/verify-email/resend";

/// The same words for every address, known or not (S30).
const CHECK_EMAIL_RESET: &str =
    "If an account uses this address, we have sent it a link to choose a new password.";
const CHECK_EMAIL_VERIFY: &str =
    "If this address belongs to an account that still needs verifying, we have sent it a link.";

fn notice(status: StatusCode, page: NoticePage<'_>) -> Response {
    render(status, &page, [])
}

fn check_email(message: &str, minutes: i64) -> Response {
    let detail = format!(
        "The link works once, for {minutes} minutes. Nothing arrived? Check your spam folder, or ask again in a minute."
    );
    notice(
        StatusCode::OK,
        NoticePage {
            title: "Check your email",
            message,
            is_error: false,
            detail: Some(&detail),
            form: None,
            link: Some(("/sign-in", "Back to sign in")),
        },
    )
}

fn link_minutes(auth: &McpAuth) -> i64 {
    crate::email::minutes_of(auth.options().email.token_expires_in)
}

fn expired_reset_link() -> Response {
    notice(
        StatusCode::BAD_REQUEST,
        NoticePage {
            title: "This link has expired",
            message: "This password reset link has expired or was already used.",
            is_error: true,
            detail: Some("Each link works once and only for a limited time. Ask for a new one."),
            form: None,
            link: Some(("/forgot-password", "Send a new reset link")),
        },
    )
}

/// `GET /forgot-password`.
pub async fn forgot_password_page(State(auth): State<McpAuth>, headers: HeaderMap) -> Response {
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let page = ForgotPasswordPage {
        csrf_token: &csrf,
        available: email::resets_passwords(&auth),
        error: None,
        email: "",
    };
    render(StatusCode::OK, &page, csrf_cookie)
}

/// `POST /forgot-password` with `email`: "check your email", the same for every address.
pub async fn forgot_password_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let email = params.get("email").unwrap_or_default();
    match request_password_reset(&auth, email, RESET_PAGE, &ip).await {
        Ok(()) => check_email(CHECK_EMAIL_RESET, link_minutes(&auth)),
        Err(error) => {
            let (status, message) = error.page_refusal();
            let csrf = auth.site().csrf_token(&parts.headers).0;
            let page = ForgotPasswordPage {
                csrf_token: &csrf,
                available: !matches!(error, MailRequestError::Unavailable),
                error: Some(&message),
                email,
            };
            render(status, &page, [])
        }
    }
}

/// `GET /reset-password?token=…`: the new-password form while the link works; `?done=1` after
/// the change; an expired-link page otherwise.
pub async fn reset_password_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    if params.get("done").is_some() {
        return notice(
            StatusCode::OK,
            NoticePage {
                title: "Password changed",
                message: "Your password was changed. Every session of your account was signed out.",
                is_error: false,
                detail: Some("Sign in with your new password."),
                form: None,
                link: Some(("/sign-in", "Sign in")),
            },
        );
    }
    let token = params.get("token").unwrap_or_default();
    match email::reset_link_works(&auth, token).await {
        Ok(true) => {}
        Ok(false) => return expired_reset_link(),
        Err(error) => return PageError::from(error).into_response(),
    }
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let page = ResetPasswordPage {
        csrf_token: &csrf,
        token,
        error: None,
        min_password: MIN_PASSWORD,
        revokes_apps: auth.options().revoke_grants_on_password_change,
    };
    render(StatusCode::OK, &page, csrf_cookie)
}

/// `POST /reset-password` with `token` and `new_password`: sets it, ends every session (this
/// browser's too) and answers 303 to the "password changed" page (S19).
pub async fn reset_password_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let token = params.get("token").unwrap_or_default();
    let new_password = params.get("new_password").unwrap_or_default();
    match email::complete_password_reset(&auth, token, new_password, &ip).await {
        Ok(()) => see_other(
            "/reset-password?done=1",
            [
                auth.site().clear_cookie(SESSION_COOKIE),
                auth.site().clear_cookie(AUTHORIZE_COOKIE),
            ],
        ),
        Err(ResetError::InvalidToken) => expired_reset_link(),
        Err(ResetError::Account(error)) => {
            let message = sentence(error.to_string().trim_end_matches('.'));
            let csrf = auth.site().csrf_token(&parts.headers).0;
            let page = ResetPasswordPage {
                csrf_token: &csrf,
                token,
                error: Some(&message),
                min_password: MIN_PASSWORD,
                revokes_apps: auth.options().revoke_grants_on_password_change,
            };
            render(error.page_status(), &page, [])
        }
        Err(ResetError::Store(error)) => PageError::from(error).into_response(),
    }
}

/// `GET /email-verified`: where a verification link lands (`?error=…` when it did not work,
/// with a form to ask for a new one).
pub async fn email_verified_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    if params.get("error").is_none() {
        return notice(
            StatusCode::OK,
            NoticePage {
                title: "Email verified",
                message: "Thank you: your email address is verified.",
                is_error: false,
                detail: None,
                form: None,
                link: Some(("/", "Continue")),
            },
        );
    }
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let sends = auth.email().sends_verification();
    let page = NoticePage {
        title: "This link has expired",
        message: "This verification link has expired or was already used.",
        is_error: true,
        detail: sends.then_some("Enter your email address to get a new link."),
        form: sends.then_some(NoticeForm {
            action: RESEND_ACTION,
            csrf_token: &csrf,
            hidden: Vec::new(),
            ask_email: true,
            button: "Send a new link",
        }),
        link: Some(("/sign-in", "Back to sign in")),
    };
    render(StatusCode::BAD_REQUEST, &page, csrf_cookie)
}

/// `GET {base}/verify-email?token=…&callbackURL=…`, the mailed verification link. A client
/// asking for JSON gets Better Auth's answer (`email_flows::api::verify_email`, which uses the
/// link at once); a browser gets [`verify_email_page`], whose button uses it — so link scanners
/// that open every link of a mail (Outlook Safe Links, Gmail) do not spend it.
pub async fn verify_email_link(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if email_api::wants_json(&headers) {
        return email_api::verify_email(State(auth), headers, request).await;
    }
    let params = Params::from_query(request.uri().query(), &[]).unwrap_or_default();
    let Ok(callback) = email_api::link_callback(&auth, &params) else {
        return email_api::invalid_callback("callbackURL");
    };
    let token = params.get("token").unwrap_or_default();
    verify_email_page(
        &auth,
        &headers,
        token,
        callback.as_deref().unwrap_or(VERIFIED_PAGE),
    )
    .await
}

/// The mailed verification link in a browser (`GET {base}/verify-email?token=…&callbackURL=…`,
/// [`verify_email_link`]): while the link works, a page with one button that
/// posts it back; nothing is used up, so a mail scanner that opens the link leaves it working.
/// A link that does not work goes on to the callback with `?error=invalid_token` (by default
/// the expired-link page).
async fn verify_email_page(
    auth: &McpAuth,
    headers: &HeaderMap,
    token: &str,
    callback: &str,
) -> Response {
    match email::verification_link_works(auth, token).await {
        Ok(true) => {}
        Ok(false) => {
            return redirect(
                StatusCode::FOUND,
                &with_param(callback, "error", "invalid_token"),
            );
        }
        Err(error) => return PageError::from(error).into_response(),
    }
    let (csrf, csrf_cookie) = auth.site().csrf_token(headers);
    let action = format!("{}/verify-email", auth.options().base_path);
    let page = NoticePage {
        title: "Verify your email",
        message: "Confirm that this email address is yours.",
        is_error: false,
        detail: None,
        form: Some(NoticeForm {
            action: &action,
            csrf_token: &csrf,
            hidden: vec![("token", token), ("callbackURL", callback)],
            ask_email: false,
            button: "Verify my email",
        }),
        link: None,
    };
    // Pages are served with `Referrer-Policy: no-referrer`: the token in this page's address
    // is not sent on.
    render(StatusCode::OK, &page, csrf_cookie)
}

/// `POST {base}/verify-email` with `token` and `callbackURL` (the button of
/// [`verify_email_page`]): uses the link up, marks the address verified and answers 303 to the
/// callback (with `?error=invalid_token` when the link no longer works).
pub async fn verify_email_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let callback = match params.get("callbackURL").filter(|raw| !raw.is_empty()) {
        None => VERIFIED_PAGE.to_owned(),
        Some(raw) => match return_to::same_origin(raw, &auth.options().issuer) {
            Ok(target) => target.into_owned(),
            Err(_) => {
                return PageError::bad_request(
                    "Invalid callbackURL: only paths or URLs on this server are allowed.",
                )
                .into_response();
            }
        },
    };
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let token = params.get("token").unwrap_or_default();
    match email::verify_email(&auth, token, &ip).await {
        Ok(Some(_)) => see_other(&callback, []),
        Ok(None) => see_other(&with_param(&callback, "error", "invalid_token"), []),
        Err(error) => PageError::from(error).into_response(),
    }
}

/// `POST /verify-email/resend` with `email`: "check your email", the same for every address.
pub async fn resend_verification_submit(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let email = params.get("email").unwrap_or_default();
    match request_verification(&auth, email, VERIFIED_PAGE, &ip).await {
        Ok(()) => check_email(CHECK_EMAIL_VERIFY, link_minutes(&auth)),
        Err(error) => {
            let (status, message) = error.page_refusal();
            PageError::new(status, "No mail was sent", message).into_response()
        }
    }
}

/// After a sign-up when verification is required: no session yet, a link is on its way.
pub(crate) fn verify_before_signing_in(
    auth: &McpAuth,
    headers: &HeaderMap,
    email: &str,
) -> Response {
    verification_needed(
        auth,
        headers,
        email,
        StatusCode::OK,
        "Check your email",
        "We have sent you a link to verify your email address. Open it, then sign in.",
    )
}

/// A sign-in refused because the address is not verified yet (`email_verification =
/// "required"`), with a button to send the link again.
pub(crate) fn unverified_sign_in(auth: &McpAuth, headers: &HeaderMap, email: &str) -> Response {
    verification_needed(
        auth,
        headers,
        email,
        StatusCode::FORBIDDEN,
        "Verify your email first",
        "Your email address is not verified yet. Open the link we mailed you, then sign in again.",
    )
}

fn verification_needed(
    auth: &McpAuth,
    headers: &HeaderMap,
    email: &str,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let (csrf, csrf_cookie) = auth.site().csrf_token(headers);
    let page = NoticePage {
        title,
        message,
        is_error: status != StatusCode::OK,
        detail: Some("Nothing arrived? Check your spam folder, or send the link again."),
        form: Some(NoticeForm {
            action: RESEND_ACTION,
            csrf_token: &csrf,
            hidden: vec![("email", email)],
            ask_email: false,
            button: "Send the link again",
        }),
        link: Some(("/sign-in", "Back to sign in")),
    };
    render(status, &page, csrf_cookie)
}
