//! What happens on a request about mail (SECURITY S30): asking for a reset or verification
//! link (rate limited, then queued on the mail service, [`crate::email`]), completing a
//! password reset, and following a verification link. Better Auth's endpoints are in `api`,
//! the pages in `pages::email`.

pub(crate) mod api;

use mcpauth_core::model::User;
use mcpauth_core::return_to;
use mcpauth_core::{Email, Password, StoreError};
use serde_json::json;

use crate::McpAuth;
use crate::email::{
    EmailVerification, VERIFIED_PAGE, plausible_token, reset_identifier, verify_identifier,
};
pub(crate) use crate::email::{MailRequestError, ResetError};
use crate::password_accounts::AccountError;
use crate::rate_limit::Limit;

/// Rate limits a mail request per client and per address; returns the normalised address.
async fn limit_mail_request(
    auth: &McpAuth,
    email: &str,
    ip: &str,
) -> Result<String, MailRequestError> {
    let email = Email::parse(email)
        .map_err(|_| MailRequestError::InvalidEmail)?
        .into_string();
    let now = auth.now();
    let limiter = auth.limiter();
    limiter
        .hit(Limit::EmailPerIp, ip, now)
        .await
        .map_err(MailRequestError::RateLimited)?;
    limiter
        .hit(Limit::EmailPerAddress, &email, now)
        .await
        .map_err(MailRequestError::RateLimited)?;
    Ok(email)
}

/// Whether passwords can be reset by mail here: a mailer is configured, and passwords sign
/// users in at all (`password_login`; with only identity providers there is nothing to reset).
pub(crate) fn resets_passwords(auth: &McpAuth) -> bool {
    auth.email().available() && auth.options().password_login
}

/// Asks for a reset link to be mailed to `email` if it has an account. `callback` is a checked
/// same-origin path the link leads to (with `?token=…`).
pub(crate) async fn request_password_reset(
    auth: &McpAuth,
    email: &str,
    callback: &str,
    ip: &str,
) -> Result<(), MailRequestError> {
    if !resets_passwords(auth) {
        return Err(MailRequestError::Unavailable);
    }
    let email = limit_mail_request(auth, email, ip).await?;
    auth.email().queue_password_reset(email, callback, ip);
    Ok(())
}

/// Asks for a verification link to be mailed to `email` if it has an unverified account.
pub(crate) async fn request_verification(
    auth: &McpAuth,
    email: &str,
    callback: &str,
    ip: &str,
) -> Result<(), MailRequestError> {
    if !auth.email().sends_verification() {
        return Err(MailRequestError::Unavailable);
    }
    let email = limit_mail_request(auth, email, ip).await?;
    auth.email().queue_verification(email, callback);
    Ok(())
}

/// After a sign-up: mails the new user a verification link leading to `callback` (a checked
/// same-origin path), when verification mail is sent (not rate limited: sign-up has its own
/// limit).
pub(crate) fn after_sign_up(auth: &McpAuth, user: &User, callback: &str) {
    if auth.email().sends_verification() {
        auth.email()
            .queue_verification(user.email.clone(), callback);
    }
}

/// Where the verification link of a sign-up made during an authorization request leads: when
/// verification is required the sign-up cannot go on to the client, so the link leads back to
/// the sign-in page of that request (which resumes it); otherwise to the "verified" page.
pub(crate) fn sign_up_callback(auth: &McpAuth, pending_authorization: Option<&str>) -> String {
    pending_authorization
        .filter(|_| auth.email().verification() == EmailVerification::Required)
        .map(|query| format!("{}?{query}", auth.options().login_page))
        .and_then(|target| {
            return_to::same_origin(&target, &auth.options().issuer)
                .ok()
                .map(|target| target.into_owned())
        })
        .unwrap_or_else(|| VERIFIED_PAGE.to_owned())
}

/// Whether a reset link still works (for showing its form; nothing is consumed).
pub(crate) async fn reset_link_works(auth: &McpAuth, token: &str) -> Result<bool, StoreError> {
    if !plausible_token(token) {
        return Ok(false);
    }
    Ok(auth
        .store()
        .peek_verification(&reset_identifier(token), auth.now())
        .await?
        .is_some())
}

/// Completes a password reset: checks the new password, then in one transaction takes the
/// link, sets the password, marks the email verified, ends every session of the user and —
/// with `revoke_grants_on_password_change` — revokes every grant (S30, S14).
pub(crate) async fn complete_password_reset(
    auth: &McpAuth,
    token: &str,
    new_password: &str,
    ip: &str,
) -> Result<(), ResetError> {
    // Each attempt costs a password hash: limited like sign-in attempts.
    auth.limiter()
        .hit(Limit::SignInPerIp, ip, auth.now())
        .await
        .map_err(|limited| ResetError::Account(AccountError::RateLimited(limited)))?;
    if !auth.options().password_login {
        return Err(ResetError::Account(AccountError::PasswordLoginDisabled));
    }
    let password = Password::parse(new_password).map_err(AccountError::from)?;
    if !reset_link_works(auth, token).await? {
        return Err(ResetError::InvalidToken);
    }
    let hash = auth.accounts().hash_password(password.as_str()).await?;
    let revoke = auth.options().revoke_grants_on_password_change;
    let audit = auth.audit_event(
        "password_reset_completed",
        None,
        None,
        Some(ip),
        json!({ "grants_revoked": revoke }),
    );
    let reset = auth
        .store()
        .reset_password(&reset_identifier(token), &hash, auth.now(), revoke, &audit)
        .await;
    if revoke {
        auth.forget_validated_tokens();
    }
    match reset? {
        Some(_) => Ok(()),
        None => Err(ResetError::InvalidToken),
    }
}

/// The user a verification value names, if it still may be verified by it: the address is
/// the same as when the link was sent, and the user is enabled.
async fn user_of_verification(auth: &McpAuth, value: &str) -> Result<Option<User>, StoreError> {
    let value: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
    let (Some(user_id), Some(email)) = (value["userId"].as_str(), value["email"].as_str()) else {
        return Ok(None);
    };
    Ok(auth
        .store()
        .user_by_id(user_id)
        .await?
        .filter(|user| user.email == email && !user.disabled))
}

/// Whether a verification link works, without using it up (what the page behind the mailed
/// link shows before its button is pressed: a link scanner's visit must not spend it).
pub(crate) async fn verification_link_works(
    auth: &McpAuth,
    token: &str,
) -> Result<bool, StoreError> {
    if !plausible_token(token) {
        return Ok(false);
    }
    let Some(value) = auth
        .store()
        .peek_verification(&verify_identifier(token), auth.now())
        .await?
    else {
        return Ok(false);
    };
    Ok(user_of_verification(auth, &value).await?.is_some())
}

/// Follows a verification link: takes it (once) and marks its user's address verified.
/// `Ok(None)`: the link is unknown, used or expired, or its address changed since.
pub(crate) async fn verify_email(
    auth: &McpAuth,
    token: &str,
    ip: &str,
) -> Result<Option<User>, StoreError> {
    if !plausible_token(token) {
        return Ok(None);
    }
    let store = auth.store();
    let Some(value) = store
        .take_verification(&verify_identifier(token), auth.now())
        .await?
    else {
        return Ok(None);
    };
    let Some(mut user) = user_of_verification(auth, &value).await? else {
        return Ok(None);
    };
    if !user.email_verified {
        store.set_email_verified(&user.id, auth.now()).await?;
        user.email_verified = true;
        auth.audit("email_verified", Some(&user.id), None, Some(ip), json!({}))
            .await;
    }
    Ok(Some(user))
}
