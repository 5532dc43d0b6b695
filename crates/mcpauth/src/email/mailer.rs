//! The seam mail goes out through ([`Mailer`]) and its two implementations: SMTP
//! ([`SmtpMailer`], on lettre) and the development log ([`LogMailer`]).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// One message to one user: a subject, a plain-text body and the link it carries.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// The recipient's address (already normalised).
    pub to: String,
    /// A short, clear subject line.
    pub subject: String,
    /// The plain-text body; ASCII, with the link on a line of its own.
    pub text: String,
    /// The link in the body (a [`LogMailer`] shows only this).
    pub link: String,
}

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends mail to users.
///
/// Promises every implementation keeps:
/// - `send` returns `Ok` only once the message was accepted for delivery (for SMTP: the
///   server's positive answer to the message data), and returns within a bounded time.
/// - A failure is reported, never retried here, and never panics.
/// - The body and the link are secrets (they carry a single-use token): never logged, except
///   by [`LogMailer`], whose whole purpose is to show them in development.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands one message over for delivery.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (default port 465).
    Tls,
    /// No encryption (default port 25): only for a relay on this machine or a test server.
    None,
}

/// Where and how to send mail over SMTP (`[smtp]` in the server's configuration, the timeout
/// as `timeout_secs`). Its `Debug` never shows the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpOptions {
    /// The SMTP server's host name (checked against its certificate with TLS).
    pub host: String,
    /// Its port; default by `tls`: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is secured (default `starttls`).
    #[serde(default)]
    pub tls: SmtpTls,
    /// User name for SMTP authentication, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub password: Option<String>,
    /// The `From` address, e.g. `mcpauth <no-reply@example.com>`.
    pub from: String,
    /// How long one connection or command may take (default 10 s).
    #[serde(
        rename = "timeout_secs",
        with = "crate::option_formats::duration_secs",
        default = "default_timeout"
    )]
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust for the SMTP server's certificate, besides the
    /// platform's (a private CA). Verification itself cannot be turned off.
    pub ca_file: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for SmtpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field(
                "password",
                &crate::option_formats::redacted(self.password.as_deref()),
            )
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Mail over SMTP with lettre: a pooled connection per server, TLS with rustls (aws-lc-rs,
/// the platform's certificate verifier, plus the CAs of `ca_file`). A server whose certificate
/// does not verify (unknown CA, wrong name) gets no mail: the send fails with lettre's TLS
/// error, which the outbox logs.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for `options`; fails on a malformed `from` address or TLS setup. Connects
    /// only when the first message is sent.
    pub fn new(options: &SmtpOptions) -> Result<Self, MailError> {
        let from: Mailbox = options
            .from
            .parse()
            .map_err(|e| MailError(format!("invalid from address {:?}: {e}", options.from)))?;
        let (tls, default_port) = match options.tls {
            SmtpTls::Starttls => (Tls::Required(tls_parameters(options)?), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls_parameters(options)?), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&options.host)
            .port(default_port)
            .tls(tls);
        let mut builder = builder.timeout(Some(options.timeout));
        if let Some(port) = options.port {
            builder = builder.port(port);
        }
        if let Some(username) = &options.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                options.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

/// TLS for `options.host`: the platform's verifier, trusting the CAs of `ca_file` too.
fn tls_parameters(options: &SmtpOptions) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(options.host.clone());
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| MailError(format!("ca_file {}: {e}", path.display())))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(MailError(format!(
                "ca_file {}: no PEM certificate in it",
                path.display()
            )));
        }
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| MailError(format!("ca_file {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| MailError(format!("TLS setup: {e}")))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError(format!("invalid recipient: {e}")))?;
        // lettre picks the transfer encoding: quoted-printable for our long link lines, which
        // every mail client decodes.
        let body = Body::new(mail.text.clone());
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError(format!("could not build the message: {e}")))?;
        // lettre's timeout applies per command; this bounds the whole exchange.
        match tokio::time::timeout(Duration::from_secs(60), self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(MailError(format!("SMTP: {error}"))),
            Err(_) => Err(MailError("SMTP: no answer within 60 s".to_owned())),
        }
    }
}

/// Development only: writes each message's recipient, subject and link to the log (at
/// `warn`) instead of sending it. The server refuses it with a public issuer.
#[derive(Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        tracing::warn!(
            to = %mail.to,
            subject = %mail.subject,
            link = %mail.link,
            "DEVELOPMENT ONLY: mail not sent (no SMTP server configured); its link is logged instead"
        );
        Ok(())
    }
}
