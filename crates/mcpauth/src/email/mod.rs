//! Mail to users (SECURITY S30): the service that turns a request for a password-reset or
//! verification link into a mail, and the outbox that delivers it. The request flows around it
//! (rate limits, completing a reset, following a link) are in `email_flows`, the pages in
//! `pages::email`; this module needs none of them, nor the `McpAuth` hub: it gets its store,
//! clock, mailer and audit constructor when it is built.
//!
//! - [`Mailer`] is the seam mail goes out through, with its promises; [`SmtpMailer`] sends over
//!   SMTP (lettre: STARTTLS, implicit TLS or plain, rustls with the aws-lc-rs provider, the
//!   platform's verifier plus an optional private CA) and [`LogMailer`] writes the links to the
//!   log instead (development only: the server refuses it with a public issuer).
//! - A link carries a random token (256 bits). The store keeps only its SHA-256 hash, as a
//!   `verification` row (Better Auth's table) that expires — an hour at most — and is taken
//!   once.
//! - `service`: a request for mail is answered before the address is even looked up: the
//!   lookup, the token and the mail happen on a background queue, for addresses with and
//!   without an account alike, so neither the answer nor its timing says whether an address
//!   has one. The token and its rendered mail are stored in one transaction
//!   ([`mcpauth_core::Store::put_verification_with_mail`]).
//! - `outbox`: the sender delivers the stored mail with retries and exponential backoff, leases
//!   each mail so that one instance sends it, and never sends a mail whose token expired. Mail
//!   survives a restart, a crash and a failing mail server.

mod mailer;
mod outbox;
mod service;

use mcpauth_core::StoreError;
use mcpauth_core::model::AuditEvent;
use serde::{Deserialize, Serialize};

use crate::password_accounts::AccountError;
use crate::rate_limit::RateLimited;

pub use mailer::{LogMailer, MailError, Mailer, OutgoingMail, SmtpMailer, SmtpOptions, SmtpTls};
pub(crate) use service::{EmailService, plausible_token, reset_identifier, verify_identifier};

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

/// Builds a security-log entry (and counts it): `(at, kind, user_id, client_id, ip, detail)`.
/// The hub passes its constructor in, so that this module does not depend on the hub.
pub(crate) type AuditFn =
    fn(i64, &str, Option<&str>, Option<&str>, Option<&str>, serde_json::Value) -> AuditEvent;

// The refusals of the request flows (`email_flows`), here so that `errors` maps them without
// depending on the flows, which answer through `errors`.
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

/// `target` (a checked same-origin path) with one more query parameter.
pub(crate) fn with_param(target: &str, name: &str, value: &str) -> String {
    let separator = if target.contains('?') { '&' } else { '?' };
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{target}{separator}{name}={value}")
}

/// A link's lifetime in whole minutes, rounded up, for the mail and the pages.
pub(crate) fn minutes_of(seconds: i64) -> i64 {
    (seconds + 59) / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_appended_encoded() {
        assert_eq!(with_param("/a", "token", "x y"), "/a?token=x+y");
        assert_eq!(with_param("/a?b=1", "error", "E"), "/a?b=1&error=E");
    }
}
