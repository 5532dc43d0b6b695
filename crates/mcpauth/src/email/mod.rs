//! Mail to users: password reset by link and verification of email addresses (SECURITY S30),
//! with Better Auth's endpoint shapes (`api`) and the pages the links open (`pages::email`).
//!
//! - [`Mailer`] is the seam mail goes out through, with its promises; [`SmtpMailer`] sends over
//!   SMTP (lettre: STARTTLS, implicit TLS or plain, rustls with the aws-lc-rs provider) and
//!   [`LogMailer`] writes the links to the log instead (development only: the server refuses it
//!   with a public issuer).
//! - A link carries a random token (256 bits). The store keeps only its SHA-256 hash, as a
//!   `verification` row (Better Auth's table) that expires — an hour at most — and is taken
//!   once: a reset takes it in the transaction that sets the password
//!   ([`mcpauth_core::Store::reset_password`]), a verification takes it before marking the
//!   address verified.
//! - A request for mail is answered before the address is even looked up: the lookup, the
//!   token and the send happen on a background queue, for addresses with and without an
//!   account alike, so neither the answer nor its timing says whether an address has one.
//!   The requests are rate limited per client address and per email address first.

pub(crate) mod api;
mod mailer;

use std::sync::Arc;

use mcpauth_core::model::User;
use mcpauth_core::return_to;
use mcpauth_core::{Clock, Email, Password, Store, StoreError, secret};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

pub use mailer::{LogMailer, MailError, Mailer, OutgoingMail, SmtpMailer, SmtpOptions, SmtpTls};

use crate::McpAuth;
use crate::password_accounts::AccountError;
use crate::rate_limit::{Limit, RateLimited};

/// Whether users must prove they read mail sent to their address (`email_verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailVerification {
    /// Sign-up mails a link and the account cannot sign in until it was followed.
    Required,
    /// Sign-up mails a link (when mail can be sent); signing in does not wait for it. The
    /// default: existing deployments, whose users never verified, keep working.
    #[default]
    Optional,
    /// No verification mail is sent.
    Off,
}

/// Mail to users: verification and password-reset links. (`[email]` in the server's
/// configuration, which refuses unknown keys there: it adds `log_links` to the table, so this
/// type does not refuse them.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailOptions {
    /// Whether addresses must be verified before signing in. Not a key of `[email]`: the
    /// server's configuration has it at the top level as `email_verification`.
    #[serde(skip)]
    pub verification: EmailVerification,
    /// How long a mailed link works, in seconds: 1 to 3600 (S30: an hour at most).
    pub token_expires_in: i64,
}

impl Default for EmailOptions {
    fn default() -> Self {
        Self {
            verification: EmailVerification::Optional,
            token_expires_in: 3600,
        }
    }
}

/// The longest a mailed link may work (SECURITY S30).
pub const MAX_TOKEN_LIFETIME: i64 = 3600;

/// Where the pages send a link's user: the reset form, and the page after a verification.
pub(crate) const RESET_PAGE: &str = "/reset-password";
pub(crate) const VERIFIED_PAGE: &str = "/email-verified";

/// The verification-table identifier of a reset link's token: only the token's hash is kept.
fn reset_identifier(token: &str) -> String {
    format!("reset-password:{}", secret::hash_token(token))
}

fn verify_identifier(token: &str) -> String {
    format!("verify-email:{}", secret::hash_token(token))
}

/// Tokens are 43 base64url characters; anything else is not worth a database query.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `target` (a checked same-origin path) with one more query parameter.
pub(crate) fn with_param(target: &str, name: &str, value: &str) -> String {
    let separator = if target.contains('?') { '&' } else { '?' };
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{target}{separator}{name}={value}")
}

/// What a mail request is about.
#[derive(Debug)]
enum Job {
    PasswordReset {
        email: String,
        callback: String,
        ip: String,
    },
    Verification {
        email: String,
        callback: String,
    },
}

/// What the background queue needs; it holds no [`McpAuth`], so the queue ends with it.
struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    token_expires_in: i64,
    /// `{issuer}{base_path}`: where the links point.
    api_base: String,
}

/// The mail service of an [`McpAuth`]: `None` queue when no [`Mailer`] is configured.
pub(crate) struct EmailService {
    options: EmailOptions,
    jobs: Option<mpsc::Sender<Job>>,
}

/// How many mail requests may wait; past that, requests are dropped (logged), and the answer
/// stays the same.
const QUEUE_CAPACITY: usize = 1024;

/// How many mails are sent at once.
const CONCURRENT_SENDS: usize = 4;

impl EmailService {
    /// Starts the queue when there is a mailer. Must be called inside a Tokio runtime.
    pub(crate) fn new(
        options: EmailOptions,
        mailer: Option<Arc<dyn Mailer>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        api_base: String,
    ) -> Self {
        let jobs = mailer.map(|mailer| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let shared = Arc::new(Shared {
                store,
                clock,
                mailer,
                token_expires_in: options.token_expires_in,
                api_base,
            });
            tokio::spawn(run_queue(shared, receiver));
            sender
        });
        Self { options, jobs }
    }

    /// Whether mail can be sent at all.
    pub(crate) fn available(&self) -> bool {
        self.jobs.is_some()
    }

    pub(crate) fn verification(&self) -> EmailVerification {
        self.options.verification
    }

    /// Whether verification mail is sent (sign-up, the resend forms).
    pub(crate) fn sends_verification(&self) -> bool {
        self.available() && self.options.verification != EmailVerification::Off
    }

    fn enqueue(&self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        if let Err(error) = jobs.try_send(job) {
            tracing::warn!(%error, "mail queue full or closed: a mail request was dropped");
        }
    }
}

async fn run_queue(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_SENDS));
    while let Some(job) = receiver.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.handle(job).await;
            drop(permit);
        });
    }
}

impl Shared {
    async fn handle(&self, job: Job) {
        let result = match job {
            Job::PasswordReset {
                email,
                callback,
                ip,
            } => self.password_reset(&email, &callback, &ip).await,
            Job::Verification { email, callback } => self.verification(&email, &callback).await,
        };
        if let Err(error) = result {
            // Never the link or the token: only that it failed, and why.
            tracing::warn!(%error, "a mail could not be sent");
        }
    }

    async fn password_reset(&self, email: &str, callback: &str, ip: &str) -> Result<(), JobError> {
        let now = self.clock.now();
        let user = self
            .store
            .user_by_email(email)
            .await?
            .map(|(user, _)| user)
            .filter(|user| !user.disabled);
        let Some(user) = user else {
            self.audit(
                "password_reset_requested",
                None,
                ip,
                json!({ "known_account": false }),
            )
            .await;
            return Ok(());
        };
        let token = secret::random_token();
        self.store
            .put_verification(
                &reset_identifier(&token),
                &user.id,
                now + self.token_expires_in,
                now,
            )
            .await?;
        let link = format!(
            "{}/reset-password/{token}?callbackURL={}",
            self.api_base,
            encode(callback)
        );
        self.audit(
            "password_reset_requested",
            Some(&user.id),
            ip,
            json!({ "known_account": true }),
        )
        .await;
        let minutes = minutes_of(self.token_expires_in);
        let text = format!(
            "Someone asked to reset the password of your account ({}).\n\n\
             To choose a new password, open this link within {minutes} minutes:\n\n\
             {link}\n\n\
             The link works once. Every session of your account will be signed out.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n",
            user.email
        );
        self.mailer
            .send(&OutgoingMail {
                to: user.email.clone(),
                subject: "Reset your password".to_owned(),
                text,
                link,
            })
            .await?;
        Ok(())
    }

    async fn verification(&self, email: &str, callback: &str) -> Result<(), JobError> {
        let now = self.clock.now();
        let user = self
            .store
            .user_by_email(email)
            .await?
            .map(|(user, _)| user)
            .filter(|user| !user.disabled && !user.email_verified);
        let Some(user) = user else { return Ok(()) };
        let token = secret::random_token();
        let value = json!({ "userId": user.id, "email": user.email }).to_string();
        self.store
            .put_verification(
                &verify_identifier(&token),
                &value,
                now + self.token_expires_in,
                now,
            )
            .await?;
        let link = format!(
            "{}/verify-email?token={token}&callbackURL={}",
            self.api_base,
            encode(callback)
        );
        let minutes = minutes_of(self.token_expires_in);
        let text = format!(
            "Confirm that {} is your email address by opening this link within {minutes} minutes:\n\n\
             {link}\n\n\
             If you did not create an account, ignore this mail.\n",
            user.email
        );
        self.mailer
            .send(&OutgoingMail {
                to: user.email.clone(),
                subject: "Verify your email address".to_owned(),
                text,
                link,
            })
            .await?;
        Ok(())
    }

    async fn audit(&self, kind: &str, user_id: Option<&str>, ip: &str, detail: serde_json::Value) {
        let event = crate::mcp_auth::security_event(
            self.clock.now(),
            kind,
            user_id,
            None,
            Some(ip),
            detail,
        );
        if let Err(error) = self.store.append_audit(&event).await {
            tracing::warn!(%error, kind, "could not write the audit log");
        }
    }
}

/// A link's lifetime in whole minutes, rounded up, for the mail and the pages.
pub(crate) fn minutes_of(seconds: i64) -> i64 {
    (seconds + 59) / 60
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// Why a request for mail was refused. None of these depends on whether the address has an
/// account.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MailRequestError {
    /// No mailer is configured (or verification is off): the feature is not available.
    #[error("this server cannot send mail")]
    Unavailable,
    /// Not an email address.
    #[error("enter a valid email address")]
    InvalidEmail,
    /// Too many requests from this client or for this address.
    #[error("too many requests; try again in {} seconds", .0.retry_after)]
    RateLimited(RateLimited),
}

/// Why a password reset was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResetError {
    /// The link is unknown, used or expired.
    #[error("this link has expired or was already used")]
    InvalidToken,
    /// The new password breaks the rules, or hashing failed, or too many attempts.
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("the server could not complete the request")]
    Store(#[from] StoreError),
}

/// Rate limits a mail request per client and per address, then queues it.
async fn queue_mail_request(
    auth: &McpAuth,
    email: &str,
    ip: &str,
    job: impl FnOnce(String) -> Job,
) -> Result<(), MailRequestError> {
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
    auth.email().enqueue(job(email));
    Ok(())
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
    queue_mail_request(auth, email, ip, |email| Job::PasswordReset {
        email,
        callback: callback.to_owned(),
        ip: ip.to_owned(),
    })
    .await
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
    queue_mail_request(auth, email, ip, |email| Job::Verification {
        email,
        callback: callback.to_owned(),
    })
    .await
}

/// After a sign-up: mails the new user a verification link leading to `callback` (a checked
/// same-origin path), when verification mail is sent (not rate limited: sign-up has its own
/// limit).
pub(crate) fn after_sign_up(auth: &McpAuth, user: &User, callback: &str) {
    if auth.email().sends_verification() {
        auth.email().enqueue(Job::Verification {
            email: user.email.clone(),
            callback: callback.to_owned(),
        });
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
    let value: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
    let (Some(user_id), Some(email)) = (value["userId"].as_str(), value["email"].as_str()) else {
        return Ok(None);
    };
    let Some(mut user) = store.user_by_id(user_id).await? else {
        return Ok(None);
    };
    if user.email != email || user.disabled {
        return Ok(None);
    }
    if !user.email_verified {
        store.set_email_verified(&user.id, auth.now()).await?;
        user.email_verified = true;
        auth.audit("email_verified", Some(&user.id), None, Some(ip), json!({}))
            .await;
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_appended_encoded() {
        assert_eq!(with_param("/a", "token", "x y"), "/a?token=x+y");
        assert_eq!(with_param("/a?b=1", "error", "E"), "/a?b=1&error=E");
    }

    #[test]
    fn only_token_shaped_strings_are_looked_up() {
        assert!(plausible_token(&secret::random_token()));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"a".repeat(44)));
        assert!(!plausible_token(&format!("{}%", "a".repeat(42))));
    }
}
