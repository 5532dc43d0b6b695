//! Every error mcpauth answers with, turned into an HTTP response in this one place:
//!
//! - [`OAuthJson`]: OAuth errors as JSON (RFC 6749 §5.2, RFC 7591 §3.2.2), never cached, with
//!   a `Basic` challenge after failed Basic client authentication (RFC 6749 §5.2);
//! - [`ApiError`] and [`AccountError`]: the account API's Better Auth–shaped errors
//!   (`{"code", "message"}`), with `Retry-After` when rate limited;
//! - [`JsonRpc`] and the `WWW-Authenticate: Bearer` challenges of the MCP endpoint (RFC 6750
//!   §3, RFC 9728 §5.1): missing or unusable tokens (401, or 503 when the store is down) and
//!   missing scopes (403 `insufficient_scope`);
//! - [`PageError`] and [`FormRefusal`]: HTML pages for the browser;
//! - [`SignInFailure`]: why a sign-in through an identity provider ended on an error page (or
//!   the JSON start's error), core's linking [`Refusal`]s among them, with the reason the audit
//!   log records;
//! - [`NoStore`]: the `Cache-Control: no-store` wrapper every answer carrying a secret or
//!   personal data goes through.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use mcpauth_core::account_linking::Refusal;
use mcpauth_core::{AccountFieldError, ErrorCode, OAuthError, StoreError};
use serde_json::json;

use crate::cimd::ClientLookupError;
use crate::email::{MailRequestError, ResetError};
use crate::password_accounts::AccountError;
use crate::rate_limit::RateLimited;
use crate::views::ErrorPage;

/// A response that no cache may keep (RFC 6749 §5.1, RFC 9111 §5.2.2.5): `Cache-Control:
/// no-store` and, for HTTP/1.0 caches, `Pragma: no-cache`.
pub struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

fn storage_failure(error: &StoreError) {
    tracing::error!(%error, "storage failure");
}

/// An OAuth error answered directly as JSON, never cached.
#[derive(Debug)]
pub struct OAuthJson {
    pub error: OAuthError,
    /// The client tried HTTP Basic authentication: a 401 carries `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// Overrides the status the error code implies (e.g. 413 for an oversized body).
    pub status: Option<StatusCode>,
}

impl From<OAuthError> for OAuthJson {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            basic_challenge: false,
            status: None,
        }
    }
}

impl From<StoreError> for OAuthJson {
    fn from(error: StoreError) -> Self {
        storage_failure(&error);
        OAuthError::from(error).into()
    }
}

impl IntoResponse for OAuthJson {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
        });
        let body = json!({
            "error": self.error.code.as_str(),
            "error_description": self.error.description,
        });
        let mut response = NoStore((status, axum::Json(body))).into_response();
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcpauth\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// An error of the account API, in Better Auth's shape: `{"code": "...", "message": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// The refusal of an account API request from another site (CSRF defence).
    pub fn cross_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "INVALID_ORIGIN",
            "requests from other sites are not accepted",
        )
    }

    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        let status =
            StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match error.code {
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::TemporarilyUnavailable => "SERVICE_UNAVAILABLE",
            _ => "INVALID_REQUEST",
        };
        Self::new(status, code, error.description)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        storage_failure(&error);
        OAuthError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        NoStore((
            self.status,
            axum::Json(json!({ "code": self.code, "message": self.message })),
        ))
        .into_response()
    }
}

impl AccountError {
    /// The status a page shows this error with.
    pub(crate) fn page_status(&self) -> StatusCode {
        match self {
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::EmailTaken => StatusCode::CONFLICT,
            Self::EmailNotAllowed | Self::PasswordLoginDisabled => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The account API's answer: Better Auth's code for each refusal.
impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Field(AccountFieldError::InvalidEmail) => {
                (StatusCode::BAD_REQUEST, "INVALID_EMAIL")
            }
            Self::Field(AccountFieldError::PasswordTooShort) => {
                (StatusCode::BAD_REQUEST, "PASSWORD_TOO_SHORT")
            }
            Self::Field(AccountFieldError::PasswordTooLong) => {
                (StatusCode::BAD_REQUEST, "PASSWORD_TOO_LONG")
            }
            Self::Field(AccountFieldError::NameTooLong) => {
                (StatusCode::BAD_REQUEST, "INVALID_NAME")
            }
            Self::EmailTaken => (StatusCode::UNPROCESSABLE_ENTITY, "USER_ALREADY_EXISTS"),
            Self::EmailNotAllowed => (StatusCode::FORBIDDEN, "EMAIL_NOT_ALLOWED"),
            Self::PasswordLoginDisabled => (StatusCode::FORBIDDEN, "PASSWORD_LOGIN_DISABLED"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "INVALID_EMAIL_OR_PASSWORD"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        };
        let limited = match &self {
            Self::RateLimited(limited) => Some(*limited),
            _ => None,
        };
        let response = ApiError::new(status, code, self.to_string()).into_response();
        match limited {
            Some(limited) => limited.annotate(response),
            None => response,
        }
    }
}

/// Why a request carries no usable bearer token.
#[derive(Debug)]
pub enum BearerError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token was presented and is unknown, expired, revoked or not for this resource.
    Invalid(&'static str),
    /// The database could not be asked.
    Unavailable(StoreError),
    /// A DPoP-bound token came without a good proof (RFC 9449 §7.1: `invalid_dpop_proof`).
    InvalidDpopProof(&'static str),
    /// A DPoP-bound token was presented as a bearer token (RFC 9449 §7.1: `invalid_token`).
    DpopBound,
    /// The proof must carry the server's nonce (RFC 9449 §9: `use_dpop_nonce`); the nonce to
    /// use, sent in `DPoP-Nonce`.
    DpopNonce(String),
}

/// A JSON-RPC error object with no id (JSON-RPC 2.0 §5), as the MCP endpoint answers a request
/// it refuses before any handler runs.
pub struct JsonRpc {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's `message`.
    pub message: String,
}

impl JsonRpc {
    /// An error answered with `status`, saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// This error with a `WWW-Authenticate` challenge.
    fn with_challenge(self, challenge: &str) -> Response {
        let mut response = self.into_response();
        if let Ok(value) = HeaderValue::from_str(challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl IntoResponse for JsonRpc {
    fn into_response(self) -> Response {
        let body = json!({
            "jsonrpc": "2.0",
            "error": { "code": -32000, "message": self.message },
            "id": null,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The `WWW-Authenticate` challenge of SPEC §5.1 (RFC 6750 §3, RFC 9728 §5.1): where the
/// resource's metadata is, the scopes to ask for, and the error, if any.
pub fn bearer_challenge(
    resource_metadata_url: &str,
    error: Option<(&str, &str)>,
    scopes: &[String],
) -> String {
    let mut challenge = format!("Bearer resource_metadata=\"{resource_metadata_url}\"");
    if !scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    }
    if let Some((code, description)) = error {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
    }
    challenge
}

/// The answer to a request without a usable bearer token: 401 (503 when the database is down)
/// with the challenge naming `scopes`, and a JSON-RPC error body.
pub fn unauthorized(
    error: &BearerError,
    resource_metadata_url: &str,
    scopes: &[String],
) -> Response {
    let (code, why) = match error {
        BearerError::InvalidDpopProof(why) => ("invalid_dpop_proof", *why),
        BearerError::DpopBound => (
            "invalid_token",
            "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
        ),
        BearerError::DpopNonce(_) => (
            "use_dpop_nonce",
            "the DPoP proof must carry the nonce sent in DPoP-Nonce",
        ),
        _ => return bearer_unauthorized(error, resource_metadata_url, scopes),
    };
    // RFC 9449 §7.1: the DPoP challenge says what went wrong and which algorithms a proof may
    // use; the Bearer challenge still names the metadata.
    let mut response = JsonRpc::new(StatusCode::UNAUTHORIZED, why)
        .with_challenge(&bearer_challenge(resource_metadata_url, None, scopes));
    let dpop = format!(
        "DPoP algs=\"{}\", error=\"{code}\", error_description=\"{why}\"",
        crate::dpop::ALGORITHMS.join(" ")
    );
    if let Ok(value) = HeaderValue::from_str(&dpop) {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, value);
    }
    if let BearerError::DpopNonce(nonce) = error
        && let Ok(value) = HeaderValue::from_str(nonce)
    {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

fn bearer_unauthorized(
    error: &BearerError,
    resource_metadata_url: &str,
    scopes: &[String],
) -> Response {
    let (status, invalid, message) = match error {
        BearerError::Missing => (StatusCode::UNAUTHORIZED, None, "authorization required"),
        BearerError::Invalid(why) => (StatusCode::UNAUTHORIZED, Some(*why), *why),
        BearerError::Unavailable(e) => {
            tracing::error!(error = %e, "storage failure while checking a bearer token");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the server could not check the token; try again",
            )
        }
        BearerError::InvalidDpopProof(why) => (StatusCode::UNAUTHORIZED, Some(*why), *why),
        BearerError::DpopBound | BearerError::DpopNonce(_) => {
            (StatusCode::UNAUTHORIZED, None, "a DPoP proof is needed")
        }
    };
    let challenge = bearer_challenge(
        resource_metadata_url,
        invalid.map(|why| ("invalid_token", why)),
        scopes,
    );
    JsonRpc::new(status, message).with_challenge(&challenge)
}

/// 403 `insufficient_scope` naming every scope the operation needs (SECURITY M2).
pub fn insufficient_scope(resource_metadata_url: &str, needed: &[String]) -> Response {
    let challenge = bearer_challenge(
        resource_metadata_url,
        Some((
            "insufficient_scope",
            "the access token lacks a scope this operation needs",
        )),
        needed,
    );
    JsonRpc::new(
        StatusCode::FORBIDDEN,
        format!("this operation needs the scopes: {}", needed.join(" ")),
    )
    .with_challenge(&challenge)
}

/// An HTML error page for the browser; used where redirecting would be unsafe (an unknown
/// client or redirect URI, SECURITY S2) or where there is nowhere to redirect to.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "This request can't be completed",
            message,
        )
    }

    /// A form post that failed the same-origin or CSRF check (SECURITY S25).
    pub fn forbidden_post() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was sent from another site or has expired. Go back, reload the page and try again.",
        )
    }
}

/// Why a form on a page was not acted on: shown on the same page with this status and
/// message, or — when the store failed — an error page.
pub enum FormRefusal {
    /// Shown on the form's page with this status.
    Page(StatusCode, String),
    /// The store failed.
    Failed(PageError),
}

impl From<StoreError> for FormRefusal {
    fn from(error: StoreError) -> Self {
        Self::Failed(error.into())
    }
}

/// At the authorization endpoint a refused metadata document is an error page, never a
/// redirect: no redirect URI is verified yet.
impl From<ClientLookupError> for PageError {
    fn from(error: ClientLookupError) -> Self {
        match error {
            ClientLookupError::Store(error) => error.into(),
            ClientLookupError::Document(refusal) => Self::bad_request(format!(
                "The application that sent you here could not be verified: {refusal}."
            )),
        }
    }
}

/// At the token, revocation and introspection endpoints a refused metadata document makes the
/// client unknown: `invalid_client`.
impl From<ClientLookupError> for OAuthError {
    fn from(error: ClientLookupError) -> Self {
        match error {
            ClientLookupError::Store(error) => {
                storage_failure(&error);
                error.into()
            }
            ClientLookupError::Document(refusal) => OAuthError::invalid_client(refusal.to_string()),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        storage_failure(&error);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The server could not reach its database. Try again in a moment.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            title: &self.title,
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// Why a sign-in through an identity provider (the start, the callback, a link from the account
/// page) ended without a session: the page each gets, the reason `upstream_sign_in.refused`
/// records (operator-visible data: do not rename), and the JSON start's error.
#[derive(Debug)]
pub(crate) enum SignInFailure {
    /// No provider has this id.
    UnknownProvider,
    /// The `state` or the answer around it does not hold up (SECURITY S28).
    State(BadState),
    /// The user cancelled or refused at the provider (`error=access_denied`).
    Cancelled,
    /// The provider answered with another `error` (its code, shortened).
    ProviderError(String),
    /// The provider's answer failed its checks (`IdentityProviderError::Refused`).
    IdentityRefused,
    /// The provider could not be reached.
    Unavailable,
    /// The linking decision refused (SECURITY S29).
    Linking(Refusal),
    /// A concurrent first sign-in of the same address made the user, and this identity is not
    /// the one linked to them.
    TakenMeanwhile,
    /// Over `sign_in_per_ip`.
    RateLimited(RateLimited),
    /// The pending sign-in could not be recorded.
    NotStarted(String),
    /// The store failed.
    Storage(StoreError),
}

/// What about a callback's `state` does not hold up; each says so on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadState {
    /// The callback's query could not be parsed.
    Unreadable,
    /// The callback has no `state`.
    Missing,
    /// No pending sign-in under it: expired, or taken already.
    ExpiredOrUsed,
    /// The pending sign-in's record could not be read.
    RecordUnreadable,
    /// The browser cookie does not match the one the sign-in started with.
    OtherBrowser,
    /// The sign-in was started with another provider.
    OtherProvider,
    /// The callback has neither `code` nor `error`.
    NoCode,
    /// The provider's display name could not be used for a new user.
    NameUnusable,
}

impl From<StoreError> for SignInFailure {
    fn from(error: StoreError) -> Self {
        Self::Storage(error)
    }
}

impl From<BadState> for SignInFailure {
    fn from(bad: BadState) -> Self {
        Self::State(bad)
    }
}

impl From<Refusal> for SignInFailure {
    fn from(refusal: Refusal) -> Self {
        Self::Linking(refusal)
    }
}

impl SignInFailure {
    /// The reason recorded with `upstream_sign_in.refused`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::UnknownProvider => "unknown_provider",
            Self::State(_) => "state",
            Self::Cancelled => "access_denied",
            Self::ProviderError(_) => "provider_error",
            Self::IdentityRefused => "identity_refused",
            Self::Unavailable => "unavailable",
            Self::Linking(refusal) => refusal.reason(),
            Self::TakenMeanwhile => "email_in_use",
            Self::RateLimited(_) => "rate_limited",
            Self::NotStarted(_) | Self::Storage(_) => "storage",
        }
    }

    /// The error page, worded with the provider's display name.
    pub(crate) fn page(self, provider: &str) -> PageError {
        let bad_state = |message: &str| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "This sign-in can't be completed",
                format!("{message} Go back to the sign-in page and start again."),
            )
        };
        let not_allowed =
            |message: String| PageError::new(StatusCode::FORBIDDEN, "Not allowed", message);
        let in_use = |message: String| {
            PageError::new(
                StatusCode::CONFLICT,
                "This email already has an account",
                message,
            )
        };
        match self {
            Self::UnknownProvider => PageError::bad_request("There is no such sign-in provider."),
            Self::State(bad) => bad_state(match bad {
                BadState::Unreadable => "The answer from the provider could not be read.",
                BadState::Missing => "The answer from the provider has no state.",
                BadState::ExpiredOrUsed => "This sign-in has expired or was already completed.",
                BadState::RecordUnreadable => "This sign-in could not be read.",
                BadState::OtherBrowser => "This sign-in was started in another browser.",
                BadState::OtherProvider => "This sign-in was started with another provider.",
                BadState::NoCode => "The answer from the provider has no code.",
                BadState::NameUnusable => "The name from the provider could not be used.",
            }),
            Self::Cancelled => PageError::new(
                StatusCode::FORBIDDEN,
                "Sign-in cancelled",
                format!("{provider} did not sign you in: the request was denied or cancelled."),
            ),
            Self::ProviderError(code) => PageError::new(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                format!("{provider} could not sign you in ({code})."),
            ),
            Self::IdentityRefused => PageError::new(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                format!(
                    "The answer from {provider} did not pass mcpauth's checks, so you were not signed in."
                ),
            ),
            Self::Unavailable => PageError::new(
                StatusCode::BAD_GATEWAY,
                format!("{provider} is not answering"),
                format!(
                    "Signing in with {provider} did not work because it could not be reached. Try again in a moment."
                ),
            ),
            Self::Linking(refusal) => match refusal {
                Refusal::RequiredClaimMissing => not_allowed(format!(
                    "Your {provider} account is not allowed to sign in here."
                )),
                Refusal::EmailNotAllowed => not_allowed(format!(
                    "The email address of your {provider} account is not allowed to sign in here, or {provider} did not say it is verified."
                )),
                Refusal::NoEmail => PageError::new(
                    StatusCode::FORBIDDEN,
                    "No email address",
                    format!(
                        "{provider} did not share an email address, which a new account needs. Allow it to share your email and try again."
                    ),
                ),
                Refusal::Disabled => PageError::new(
                    StatusCode::FORBIDDEN,
                    "Account disabled",
                    "This account is disabled. Ask the administrator to enable it.",
                ),
                Refusal::EmailInUse => in_use(format!(
                    "An account with the email address of your {provider} account exists, and it can't be joined automatically because the address is not verified on both sides. Sign in to that account another way, then link {provider} from your account page."
                )),
                Refusal::NoLongerSignedIn => {
                    bad_state("You are no longer signed in as the account that started linking.")
                }
                Refusal::LinkedElsewhere => PageError::new(
                    StatusCode::CONFLICT,
                    "Linked to another account",
                    format!("This {provider} account already signs in to another account here."),
                ),
                Refusal::AlreadyLinked => PageError::new(
                    StatusCode::CONFLICT,
                    "Already linked",
                    format!(
                        "Another {provider} account is linked to your account already. Unlink it first."
                    ),
                ),
            },
            Self::TakenMeanwhile => in_use(format!(
                "Another account uses the email address of your {provider} account."
            )),
            Self::RateLimited(limited) => PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!(
                    "Too many sign-in attempts; try again in {} seconds.",
                    limited.retry_after
                ),
            ),
            Self::NotStarted(error) => {
                PageError::bad_request(format!("The sign-in could not be started: {error}."))
            }
            Self::Storage(error) => error.into(),
        }
    }

    /// The error page as a response (`Retry-After` when rate limited).
    pub(crate) fn page_response(self, provider: &str) -> Response {
        let limited = match &self {
            Self::RateLimited(limited) => Some(*limited),
            _ => None,
        };
        let response = self.page(provider).into_response();
        match limited {
            Some(limited) => limited.annotate(response),
            None => response,
        }
    }

    /// Better Auth's JSON start (`POST {base}/sign-in/social` with JSON): the account API's
    /// shape.
    pub(crate) fn api_response(self, provider: &str) -> Response {
        match self {
            Self::UnknownProvider => {
                ApiError::bad_request("PROVIDER_NOT_FOUND", "no such provider").into_response()
            }
            Self::RateLimited(limited) => AccountError::RateLimited(limited).into_response(),
            other => {
                let page = other.page(provider);
                ApiError::new(page.status, "UPSTREAM_UNAVAILABLE", page.message).into_response()
            }
        }
    }
}

impl MailRequestError {
    /// The status and sentence a page shows this refusal with.
    pub(crate) fn page_refusal(&self) -> (StatusCode, String) {
        let status = match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidEmail => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        (status, sentence(&self.to_string()))
    }
}

/// An error's lower-case text as a sentence for a page: capitalised, with one full stop
/// (`the password must …` → `The password must ….`).
pub(crate) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A refused request for mail (password reset, verification), in the account API's shape.
impl IntoResponse for MailRequestError {
    fn into_response(self) -> Response {
        match self {
            Self::Unavailable => ApiError::bad_request(
                "EMAIL_NOT_AVAILABLE",
                "This server is not configured to send mail",
            )
            .into_response(),
            Self::InvalidEmail => {
                ApiError::bad_request("INVALID_EMAIL", "Invalid email").into_response()
            }
            Self::RateLimited(limited) => AccountError::RateLimited(limited).into_response(),
        }
    }
}

/// A refused password reset, in the account API's shape (Better Auth's `INVALID_TOKEN`).
impl IntoResponse for ResetError {
    fn into_response(self) -> Response {
        match self {
            Self::InvalidToken => {
                ApiError::bad_request("INVALID_TOKEN", "Invalid token").into_response()
            }
            Self::Account(error) => error.into_response(),
            Self::Store(error) => ApiError::from(error).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            sentence("enter a valid email address"),
            "Enter a valid email address."
        );
        let (status, message) = MailRequestError::InvalidEmail.page_refusal();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(message, "Enter a valid email address.");
    }

    #[test]
    fn oauth_errors_are_json_with_no_store() {
        let response = OAuthJson::from(OAuthError::invalid_grant("nope")).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn invalid_client_after_basic_carries_a_basic_challenge() {
        let response = OAuthJson {
            error: OAuthError::invalid_client("bad secret"),
            basic_challenge: true,
            status: None,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap_or_default();
        assert!(challenge.starts_with("Basic "));
    }

    #[test]
    fn explicit_status_wins() {
        let response = OAuthJson {
            error: OAuthError::invalid_request("too big"),
            basic_challenge: false,
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}

/// The answer to a path nothing serves — and to every console URL for anyone who is not an
/// admin (SECURITY A1), so that the two cannot be told apart.
pub(crate) fn no_such_endpoint() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": "not_found", "error_description": "no such endpoint" })),
    )
        .into_response()
}

/// Why the console (SECURITY A1) or its API did not do what was asked. A page shows it as an
/// HTML page ([`ConsoleError::page`]), the API as `{"error", "message"}` JSON
/// ([`ConsoleError::api`]); both never cached.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// Not an admin, not signed in, or nothing here: exactly [`no_such_endpoint`].
    NotFound,
    /// An admin whose sign-in is older than `admin_reauth_secs`: a page sends the browser to
    /// sign in again and come back to `return_to`; the API answers 401.
    Reauthenticate {
        /// The console path to come back to.
        return_to: String,
    },
    /// The request cannot be acted on, for this reason (shown to the admin).
    BadRequest(String),
    /// A form or JSON post that failed the CSRF or same-origin check.
    Forbidden,
    /// Over the console's rate limit.
    RateLimited(RateLimited),
    /// The store failed.
    Unavailable(StoreError),
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error)
    }
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Reauthenticate { .. } => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::NotFound => "no such endpoint".to_owned(),
            Self::Reauthenticate { .. } => {
                "the console needs a recent sign-in: sign in again".to_owned()
            }
            Self::BadRequest(message) => message.clone(),
            Self::Forbidden => {
                "the request came from another site or its form has expired".to_owned()
            }
            Self::RateLimited(limited) => format!(
                "too many requests; try again in {} seconds",
                limited.retry_after
            ),
            Self::Unavailable(error) => {
                storage_failure(error);
                "the database could not be reached; try again in a moment".to_owned()
            }
        }
    }

    fn retry_after(&self, mut response: Response) -> Response {
        if let Self::RateLimited(limited) = self
            && let Ok(value) = HeaderValue::from_str(&limited.retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    /// As an HTML page (or, for a stale admin session, the redirect to sign in again).
    pub(crate) fn page(self) -> Response {
        match self {
            Self::NotFound => no_such_endpoint(),
            Self::Reauthenticate { return_to } => {
                let location = format!(
                    "/sign-in?reauth=1&return_to={}",
                    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
                );
                let mut response = StatusCode::SEE_OTHER.into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                response
            }
            Self::Forbidden => PageError::forbidden_post().into_response(),
            other => {
                let title = match other {
                    Self::BadRequest(_) => "This can't be done",
                    Self::RateLimited(_) => "Too many requests",
                    _ => "Temporarily unavailable",
                };
                let response =
                    PageError::new(other.status(), title, other.message()).into_response();
                other.retry_after(response)
            }
        }
    }

    /// As the API's JSON error.
    pub(crate) fn api(self) -> Response {
        if matches!(self, Self::NotFound) {
            return no_such_endpoint();
        }
        let error = match &self {
            Self::Reauthenticate { .. } => "login_required",
            Self::BadRequest(_) => "invalid_request",
            Self::Forbidden => "forbidden",
            Self::RateLimited(_) => "too_many_requests",
            _ => "temporarily_unavailable",
        };
        let response = NoStore((
            self.status(),
            axum::Json(json!({ "error": error, "message": self.message() })),
        ))
        .into_response();
        self.retry_after(response)
    }
}
