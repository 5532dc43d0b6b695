//! The browser's side of signing in: the session cookie (only its hash is stored) and the
//! signed cookie that remembers an authorization request while the user signs in (SPEC §4,
//! Better Auth's login resume).

use axum::http::{HeaderMap, HeaderValue, header};
use mcpauth_core::model::{Session, User};
use mcpauth_core::{StoreError, secret};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::email::EmailVerification;
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};

/// Why a user whose credentials checked out gets no session.
#[derive(Debug)]
pub(crate) enum SignInRefused {
    /// The account is disabled.
    Disabled,
    /// `email_verification = "required"` and the address is not verified yet.
    EmailNotVerified,
    /// The session could not be stored.
    Store(StoreError),
}

impl From<StoreError> for SignInRefused {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The email-verification gate of sign-in: with `email_verification = "required"` an account
/// whose address is not verified does not get a session, however it signed in.
fn require_verified_email(auth: &McpAuth, user: &User) -> Result<(), SignInRefused> {
    if auth.email().verification() == EmailVerification::Required && !user.email_verified {
        return Err(SignInRefused::EmailNotVerified);
    }
    Ok(())
}

/// Starts a browser session; returns the cookie to set. Every successful sign-in — password
/// (page or JSON API), sign-up, identity provider — ends here, so the rules of who may
/// have a session live here: a disabled account never gets one, nor (when verification is
/// required) an unverified one.
pub(crate) async fn start_session(
    auth: &McpAuth,
    user: &User,
    headers: &HeaderMap,
    ip: &str,
) -> Result<(Session, HeaderValue), SignInRefused> {
    // Read again rather than trusting the caller's copy: an sign-in or a link found
    // the user a moment ago, and an operator may have disabled (or a link verified) them since.
    let refused = match auth.store().user_by_id(&user.id).await? {
        Some(current) if !current.disabled => require_verified_email(auth, &current).err(),
        _ => Some(SignInRefused::Disabled),
    };
    if let Some(refused) = refused {
        // The credentials (or the provider) said yes: the log says why there is no session.
        let reason = match refused {
            SignInRefused::EmailNotVerified => "email_not_verified",
            _ => "disabled",
        };
        auth.audit(
            "sign_in.refused",
            Some(&user.id),
            None,
            Some(ip),
            json!({ "reason": reason }),
        )
        .await;
        return Err(refused);
    }
    let token = secret::random_token();
    let now = auth.now();
    let session = Session {
        id: secret::random_id(),
        token_hash: secret::hash_token(&token),
        user_id: user.id.clone(),
        expires_at: now + auth.options().session_expires_in,
        created_at: now,
        auth_time: now,
        ip_address: Some(ip.to_owned()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
    auth.store().create_session(&session).await?;
    let cookie = auth
        .site()
        .set_cookie(SESSION_COOKIE, &token, auth.options().session_expires_in);
    Ok((session, cookie))
}

/// The browser's session, from its cookie.
pub(crate) async fn browser_session(
    auth: &McpAuth,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, StoreError> {
    match auth.site().read_cookie(headers, SESSION_COOKIE) {
        Some(token) => {
            auth.store()
                .session_by_token(&secret::hash_token(token), auth.now())
                .await
        }
        None => Ok(None),
    }
}

/// Ends the browser's session, if any.
pub(crate) async fn end_session(auth: &McpAuth, headers: &HeaderMap) -> Result<(), StoreError> {
    if let Some(token) = auth.site().read_cookie(headers, SESSION_COOKIE) {
        auth.store()
            .delete_session(&secret::hash_token(token))
            .await?;
    }
    Ok(())
}

/// Remembers an authorization request while the user signs in (signed, 10 minutes).
pub(crate) fn pending_authorization_cookie(auth: &McpAuth, query: &str) -> HeaderValue {
    let payload = json!({ "q": query, "exp": auth.now() + PENDING_LIFETIME }).to_string();
    let value = auth.site().sign_value(AUTHORIZE_COOKIE, &payload);
    auth.site()
        .set_cookie(AUTHORIZE_COOKIE, &value, PENDING_LIFETIME)
}

/// The authorization request remembered by [`Self::pending_authorization_cookie`], if it
/// is intact and fresh.
pub(crate) fn pending_authorization(auth: &McpAuth, headers: &HeaderMap) -> Option<String> {
    let value = auth.site().read_cookie(headers, AUTHORIZE_COOKIE)?;
    let payload: Value =
        serde_json::from_str(&auth.site().verify_value(AUTHORIZE_COOKIE, value)?).ok()?;
    let expires = payload.get("exp")?.as_i64()?;
    if expires <= auth.now() {
        return None;
    }
    payload.get("q")?.as_str().map(str::to_owned)
}

const PENDING_LIFETIME: i64 = 600;
