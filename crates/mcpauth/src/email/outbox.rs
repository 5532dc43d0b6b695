//! The outbox sender: delivers the mail stored by the service
//! ([`mcpauth_core::Store::claim_mail`]), one pass at a time.
//!
//! - Each pass first drops the mail whose token expired (never sent late; counted in
//!   `mcpauth_mail_total{result="expired"}` and logged), then claims a batch of due mail under
//!   a lease, so that several instances on one database never send a mail twice, and hands
//!   each to the [`Mailer`].
//! - Sent: the row is deleted. Failed: retried after 2, 4, 8, … seconds (at most 5 minutes
//!   apart), up to [`MAX_ATTEMPTS`] attempts, then given up: logged at `error` and written to
//!   the audit log (`mail.failed`). A claim that a crash interrupted counts as an attempt, and
//!   the next sender takes the mail once its lease has run out.
//! - The sender wakes when the service queued a mail, and otherwise every [`POLL`], so that
//!   retries, and mail left by another process (a restart, a `kill -9`), go out.
//! - The body and the link are never logged: only the subject, the attempt and the error.

use std::sync::Arc;
use std::time::Duration;

use mcpauth_core::model::OutboxMail;
use mcpauth_core::{Clock, Store, secret};
use serde_json::json;
use tokio::sync::mpsc;

use super::{AuditFn, Mailer, OutgoingMail};

/// Attempts before a mail is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// How often the sender looks for due mail when nothing woke it.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// How long a claim holds a mail: longer than one attempt may take ([`SEND_TIMEOUT`]), so that
/// no other sender takes it while it is being sent.
const LEASE_SECS: i64 = 90;

/// The most one attempt may take, whatever the [`Mailer`].
const SEND_TIMEOUT: Duration = Duration::from_secs(75);

/// How many mails a pass claims (and sends at once).
const BATCH: u32 = 4;

/// The wait after the `attempts`-th failed attempt: 2^attempts seconds, at most 5 minutes.
fn backoff(attempts: u32) -> i64 {
    1_i64
        .checked_shl(attempts.min(16))
        .unwrap_or(i64::MAX)
        .min(300)
}

/// Wakes the sender; when the last one is dropped, the sender stops.
#[derive(Clone)]
pub(crate) struct Wake(mpsc::Sender<()>);

impl Wake {
    pub(crate) fn wake(&self) {
        // Full: a wake-up is pending already, which is as good.
        let _ = self.0.try_send(());
    }
}

/// Starts the sender on the current Tokio runtime.
pub(crate) fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    audit: AuditFn,
    seal_key: Arc<str>,
) -> Wake {
    let (sender, receiver) = mpsc::channel(1);
    let sender_task = Sender {
        store,
        clock,
        mailer,
        audit,
        seal_key,
    };
    tokio::spawn(sender_task.run(receiver));
    Wake(sender)
}

struct Sender {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    /// Opens the body and link, which the outbox keeps sealed ([`super::service`]).
    seal_key: Arc<str>,
    audit: AuditFn,
}

impl Sender {
    async fn run(self, mut wake: mpsc::Receiver<()>) {
        let this = Arc::new(self);
        loop {
            // Passes until nothing is due, then a wait.
            while this.pass().await {}
            tokio::select! {
                woken = wake.recv() => {
                    if woken.is_none() {
                        return;
                    }
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One pass; whether it claimed a full batch (more may be due).
    async fn pass(self: &Arc<Self>) -> bool {
        let now = self.clock.now();
        match self.store.drop_expired_mail(now).await {
            Ok(0) => {}
            Ok(dropped) => {
                metrics::counter!("mcpauth_mail_total", "result" => "expired").increment(dropped);
                tracing::warn!(
                    dropped,
                    "mail not sent before its link expired was dropped (the mail server failed or was unreachable for too long)"
                );
            }
            Err(error) => tracing::warn!(%error, "mail outbox: could not drop expired mail"),
        }
        let claimed = match self.store.claim_mail(now, now + LEASE_SECS, BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "mail outbox: could not claim mail");
                return false;
            }
        };
        let full = claimed.len() == BATCH as usize;
        let mut sends = tokio::task::JoinSet::new();
        for mail in claimed {
            let this = self.clone();
            sends.spawn(async move { this.send(mail).await });
        }
        while sends.join_next().await.is_some() {}
        full
    }

    async fn send(&self, mail: OutboxMail) {
        let now = self.clock.now();
        let opened = (
            open_text(&self.seal_key, &mail.text),
            open_text(&self.seal_key, &mail.link),
        );
        let (Some(text), Some(link)) = opened else {
            // Sealed with another key (key_encryption_secret changed since it was queued): no
            // attempt can ever send it.
            metrics::counter!("mcpauth_mail_total", "result" => "failed").increment(1);
            tracing::error!(
                subject = %mail.subject,
                "a queued mail cannot be opened (was key_encryption_secret changed?) and was given up"
            );
            let given_up = self
                .store
                .mail_failed(&mail.id, now, None, "sealed with another key")
                .await;
            if let Err(error) = given_up {
                tracing::warn!(%error, "mail outbox: could not record an attempt");
            }
            return;
        };
        let outgoing = OutgoingMail {
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            text,
            link,
        };
        let sent = match tokio::time::timeout(SEND_TIMEOUT, self.mailer.send(&outgoing)).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {} s", SEND_TIMEOUT.as_secs())),
        };
        let now = self.clock.now();
        let recorded = match sent {
            Ok(()) => {
                metrics::counter!("mcpauth_mail_total", "result" => "sent").increment(1);
                tracing::info!(subject = %mail.subject, attempt = mail.attempts, "mail sent");
                self.store.mail_sent(&mail.id).await
            }
            Err(error) if mail.attempts < MAX_ATTEMPTS => {
                metrics::counter!("mcpauth_mail_total", "result" => "retry").increment(1);
                let wait = backoff(mail.attempts);
                tracing::warn!(
                    subject = %mail.subject,
                    attempt = mail.attempts,
                    retry_in_secs = wait,
                    %error,
                    "a mail could not be sent; it will be retried"
                );
                self.store
                    .mail_failed(&mail.id, now, Some(now + wait), &error)
                    .await
            }
            Err(error) => {
                metrics::counter!("mcpauth_mail_total", "result" => "failed").increment(1);
                tracing::error!(
                    subject = %mail.subject,
                    attempts = mail.attempts,
                    %error,
                    "a mail could not be sent and was given up"
                );
                let event = (self.audit)(
                    now,
                    "mail.failed",
                    None,
                    None,
                    None,
                    json!({ "subject": mail.subject, "attempts": mail.attempts, "error": error }),
                );
                if let Err(error) = self.store.append_audit(&event).await {
                    tracing::warn!(%error, "could not write the audit log");
                }
                self.store.mail_failed(&mail.id, now, None, &error).await
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(%error, "mail outbox: could not record an attempt");
        }
    }
}

/// A sealed body or link as text (`None`: not sealed with this key).
fn open_text(key: &str, sealed: &str) -> Option<String> {
    secret::open(key, sealed).and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(2), 4);
        assert_eq!(backoff(8), 256);
        assert_eq!(backoff(9), 300);
        assert_eq!(backoff(u32::MAX), 300);
    }
}
