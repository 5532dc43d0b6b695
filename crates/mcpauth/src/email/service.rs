//! The mail service: requests for a link are queued in memory and answered at once; the queue
//! looks the address up and, for an account that should get mail, stores a new token together
//! with its rendered mail in the outbox ([`Store::put_verification_with_mail`]), then wakes the
//! sender ([`super::outbox`]).

use std::sync::Arc;

use mcpauth_core::model::OutboxMail;
use mcpauth_core::{Clock, Store, StoreError, secret};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::outbox::{self, Wake};
use super::{AuditFn, EmailOptions, EmailVerification, Mailer, minutes_of};

/// The verification-table identifier of a reset link's token: only the token's hash is kept.
pub(crate) fn reset_identifier(token: &str) -> String {
    format!("reset-password:{}", secret::hash_token(token))
}

/// The verification-table identifier of a verification link's token.
pub(crate) fn verify_identifier(token: &str) -> String {
    format!("verify-email:{}", secret::hash_token(token))
}

/// Tokens are 43 base64url characters; anything else is not worth a database query.
pub(crate) fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

/// What the request queue needs; it holds no hub, so the queue ends with the service.
struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditFn,
    token_expires_in: i64,
    /// `{issuer}{base_path}`: where the links point.
    api_base: String,
    /// Tells the sender that a mail is waiting.
    wake: Wake,
    /// Seals each stored mail's body and link (the key-encryption secret).
    seal_key: Arc<str>,
}

/// The mail service of an `McpAuth`: no queue when no [`Mailer`] is configured.
pub(crate) struct EmailService {
    options: EmailOptions,
    jobs: Option<mpsc::Sender<Job>>,
}

/// How many mail requests may wait; past that, requests are dropped (logged), and the answer
/// stays the same.
const QUEUE_CAPACITY: usize = 1024;

/// How many requests are worked on at once.
const CONCURRENT_JOBS: usize = 4;

impl EmailService {
    /// Starts the request queue and the outbox sender when there is a mailer; both end when
    /// the service is dropped. Must be called inside a Tokio runtime.
    pub(crate) fn new(
        options: EmailOptions,
        mailer: Option<Arc<dyn Mailer>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        api_base: String,
        audit: AuditFn,
        seal_key: Arc<str>,
    ) -> Self {
        let jobs = mailer.map(|mailer| {
            let wake = outbox::start(
                store.clone(),
                clock.clone(),
                mailer,
                audit,
                seal_key.clone(),
            );
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let shared = Arc::new(Shared {
                store,
                clock,
                audit,
                token_expires_in: options.token_expires_in,
                api_base,
                wake,
                seal_key,
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

    /// Queues a reset link for `email` (normalised), sent only if it has an enabled account;
    /// `callback` is the checked same-origin path the link leads to.
    pub(crate) fn queue_password_reset(&self, email: String, callback: &str, ip: &str) {
        self.enqueue(Job::PasswordReset {
            email,
            callback: callback.to_owned(),
            ip: ip.to_owned(),
        });
    }

    /// Queues a verification link for `email` (normalised), sent only if it has an enabled,
    /// unverified account.
    pub(crate) fn queue_verification(&self, email: String, callback: &str) {
        self.enqueue(Job::Verification {
            email,
            callback: callback.to_owned(),
        });
    }

    fn enqueue(&self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        if let Err(error) = jobs.try_send(job) {
            tracing::warn!(%error, "mail queue full or closed: a mail request was dropped");
        }
    }
}

async fn run_queue(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_JOBS));
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
        match result {
            // Never the link or the token: only that it failed, and why.
            Err(error) => tracing::warn!(%error, "a mail could not be queued"),
            Ok(true) => self.wake.wake(),
            Ok(false) => {}
        }
    }

    /// Whether a mail was queued.
    async fn password_reset(
        &self,
        email: &str,
        callback: &str,
        ip: &str,
    ) -> Result<bool, StoreError> {
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
            return Ok(false);
        };
        let token = secret::random_token();
        let link = format!(
            "{}/reset-password/{token}?callbackURL={}",
            self.api_base,
            encode(callback)
        );
        let minutes = minutes_of(self.token_expires_in);
        let text = format!(
            "Someone asked to reset the password of your account ({}).\n\n\
             To choose a new password, open this link within {minutes} minutes:\n\n\
             {link}\n\n\
             The link works once. Every session of your account will be signed out.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n",
            user.email
        );
        let expires_at = now + self.token_expires_in;
        let mail = self.mail(&user.email, "Reset your password", text, link, expires_at);
        self.store
            .put_verification_with_mail(&reset_identifier(&token), &user.id, expires_at, now, &mail)
            .await?;
        self.audit(
            "password_reset_requested",
            Some(&user.id),
            ip,
            json!({ "known_account": true }),
        )
        .await;
        Ok(true)
    }

    /// Whether a mail was queued.
    async fn verification(&self, email: &str, callback: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let user = self
            .store
            .user_by_email(email)
            .await?
            .map(|(user, _)| user)
            .filter(|user| !user.disabled && !user.email_verified);
        let Some(user) = user else { return Ok(false) };
        let token = secret::random_token();
        let value = json!({ "userId": user.id, "email": user.email }).to_string();
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
        let expires_at = now + self.token_expires_in;
        let mail = self.mail(
            &user.email,
            "Verify your email address",
            text,
            link,
            expires_at,
        );
        self.store
            .put_verification_with_mail(&verify_identifier(&token), &value, expires_at, now, &mail)
            .await?;
        Ok(true)
    }

    fn mail(
        &self,
        to: &str,
        subject: &str,
        text: String,
        link: String,
        expires_at: i64,
    ) -> OutboxMail {
        // The link carries the token, which the database otherwise keeps only as a hash
        // (SECURITY S24, S30): body and link are stored sealed (AEAD with the key-encryption
        // secret, as signing keys are), so a dump of the outbox or its freed pages shows none.
        OutboxMail {
            id: secret::random_id(),
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: secret::seal(&self.seal_key, text.as_bytes()),
            link: secret::seal(&self.seal_key, link.as_bytes()),
            expires_at,
            created_at: self.clock.now(),
            attempts: 0,
        }
    }

    async fn audit(&self, kind: &str, user_id: Option<&str>, ip: &str, detail: serde_json::Value) {
        let event = (self.audit)(self.clock.now(), kind, user_id, None, Some(ip), detail);
        if let Err(error) = self.store.append_audit(&event).await {
            tracing::warn!(%error, kind, "could not write the audit log");
        }
    }
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_strings_are_looked_up() {
        assert!(plausible_token(&secret::random_token()));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"a".repeat(44)));
        assert!(!plausible_token(&format!("{}%", "a".repeat(42))));
    }
}
