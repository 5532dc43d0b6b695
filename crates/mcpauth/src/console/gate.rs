//! Who may use the console (SECURITY A1): an admin, recently signed in (pages), or holding an
//! access token with the `mcpauth:admin` scope (the API). Anyone else is answered exactly as an
//! unknown path is, so the console's existence is not revealed; only a recognised admin whose
//! sign-in is too old learns that the console wants a fresh one.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use mcpauth_core::StoreError;
use mcpauth_core::model::User;

use crate::McpAuth;
use crate::browser_session::browser_session;
use crate::errors::{BearerError, ConsoleError};
use crate::options::ADMIN_SCOPE;
use crate::rate_limit::Limit;

/// How an admin reached the console; recorded with every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A browser session (the pages, or the API called from them).
    Session,
    /// An access token with the `mcpauth:admin` scope.
    Token,
}

impl Via {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Token => "token",
        }
    }
}

/// The admin a request acts for, and where it came from.
pub(crate) struct Admin {
    pub(crate) user: User,
    pub(crate) via: Via,
    pub(crate) ip: String,
}

/// Whether `user` may use the console: enabled, and named in `admins` with a verified address
/// (an unverified one could be anyone's sign-up) or made an admin in the store.
pub(crate) async fn is_admin(auth: &McpAuth, user: &User) -> Result<bool, StoreError> {
    if user.disabled {
        return Ok(false);
    }
    let configured = user.email_verified
        && auth
            .options()
            .admins
            .iter()
            .any(|email| email.eq_ignore_ascii_case(&user.email));
    Ok(configured || auth.store().is_admin(&user.id).await?)
}

/// The admin behind a page request: a browser session of an admin, signed in within
/// `admin_reauth_secs`. A stale admin session is sent to sign in again and come back to
/// `return_to`; anything else that is not an admin's is [`ConsoleError::NotFound`].
pub(crate) async fn page_admin(
    auth: &McpAuth,
    parts: &Parts,
    return_to: &str,
) -> Result<Admin, ConsoleError> {
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    // Counted before anything is known, answered after: only an admin learns of the limit.
    let limited = auth
        .limiter()
        .hit(Limit::AdminPerIp, &ip, auth.now())
        .await
        .err();
    let Some((session, user)) = browser_session(auth, &parts.headers).await? else {
        return Err(ConsoleError::NotFound);
    };
    if !is_admin(auth, &user).await? {
        return Err(ConsoleError::NotFound);
    }
    if let Some(limited) = limited {
        return Err(ConsoleError::RateLimited(limited));
    }
    if session.auth_time + auth.options().admin_reauth_secs <= auth.now() {
        return Err(ConsoleError::Reauthenticate {
            return_to: return_to.to_owned(),
        });
    }
    Ok(Admin {
        user,
        via: Via::Session,
        ip,
    })
}

/// The admin behind an API request: an access token with the `mcpauth:admin` scope whose user
/// is an admin, or else an admin's recent browser session — whose posts must come from this
/// origin with a JSON body (which another site cannot send without a CORS preflight the
/// console never answers).
pub(crate) async fn api_admin(auth: &McpAuth, parts: &Parts) -> Result<Admin, ConsoleError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return token_admin(auth, parts).await;
    }
    let admin = page_admin(auth, parts, &console_home(auth)).await?;
    if parts.method != Method::GET
        && !(auth.site().same_origin(&parts.headers) && is_json(&parts.headers))
    {
        return Err(ConsoleError::Forbidden);
    }
    Ok(admin)
}

async fn token_admin(auth: &McpAuth, parts: &Parts) -> Result<Admin, ConsoleError> {
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let limited = auth
        .limiter()
        .hit(Limit::AdminPerIp, &ip, auth.now())
        .await
        .err();
    let session = match auth.verify_bearer_any_audience(&parts.headers).await {
        Ok(session) => session,
        Err(BearerError::Unavailable(error)) => return Err(ConsoleError::Unavailable(error)),
        Err(_) => return Err(ConsoleError::NotFound),
    };
    if !session.has_scope(ADMIN_SCOPE) {
        return Err(ConsoleError::NotFound);
    }
    // A machine's token (client_credentials) has no user, so no admin.
    let Some(user_id) = session.user_id.as_deref() else {
        return Err(ConsoleError::NotFound);
    };
    let Some(user) = auth.store().user_by_id(user_id).await? else {
        return Err(ConsoleError::NotFound);
    };
    if !is_admin(auth, &user).await? {
        return Err(ConsoleError::NotFound);
    }
    if let Some(limited) = limited {
        return Err(ConsoleError::RateLimited(limited));
    }
    Ok(Admin {
        user,
        via: Via::Token,
        ip,
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// `{base_path}/admin`.
pub(crate) fn console_home(auth: &McpAuth) -> String {
    format!("{}/admin", auth.options().base_path)
}
