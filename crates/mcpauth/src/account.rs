//! Accounts and browser sessions: sign-up, sign-in and sign-out, the session cookie, and the
//! Better Auth–compatible JSON API (`{base}/sign-up/email`, `/sign-in/email`, `/sign-out`,
//! `/get-session`). Passwords are argon2id; unknown emails cost the same time as wrong
//! passwords (SECURITY S26).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::{Session, User};
use mcpauth_core::{StoreError, secret};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::errors::ApiError;
use crate::params::{Params, read_body};
use crate::rate_limit::{Limit, RateLimited};
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted.
pub const MAX_PASSWORD: usize = 128;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The email address is not one.
    #[error("enter a valid email address")]
    InvalidEmail,
    /// The password is shorter than [`MIN_PASSWORD`] characters.
    #[error("the password must be at least {MIN_PASSWORD} characters")]
    PasswordTooShort,
    /// The password is longer than [`MAX_PASSWORD`] characters.
    #[error("the password must be at most {MAX_PASSWORD} characters")]
    PasswordTooLong,
    /// The display name is longer than 200 characters.
    #[error("the name must be at most 200 characters")]
    NameTooLong,
    /// Another account has this email address.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The email and password do not match an enabled account (which of the two is wrong is
    /// deliberately not said).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many attempts from this address or on this account.
    #[error("too many attempts; try again in {} seconds", .0.retry_after)]
    RateLimited(RateLimited),
    /// The database or the password hasher failed.
    #[error("the server could not complete the request")]
    Unavailable,
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => Self::EmailTaken,
            StoreError::Database(e) => {
                tracing::error!(error = %e, "storage failure");
                Self::Unavailable
            }
        }
    }
}

impl AccountError {
    fn into_api(self) -> Response {
        let (status, code) = match &self {
            Self::InvalidEmail => (StatusCode::BAD_REQUEST, "INVALID_EMAIL"),
            Self::PasswordTooShort => (StatusCode::BAD_REQUEST, "PASSWORD_TOO_SHORT"),
            Self::PasswordTooLong => (StatusCode::BAD_REQUEST, "PASSWORD_TOO_LONG"),
            Self::NameTooLong => (StatusCode::BAD_REQUEST, "INVALID_NAME"),
            Self::EmailTaken => (StatusCode::UNPROCESSABLE_ENTITY, "USER_ALREADY_EXISTS"),
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

    /// The status a page shows this error with.
    pub fn page_status(&self) -> StatusCode {
        match self {
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::EmailTaken => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Trims and lower-cases an email address and checks it looks like one.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(AccountError::InvalidEmail)
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    match password.chars().count() {
        n if n < MIN_PASSWORD => Err(AccountError::PasswordTooShort),
        n if n > MAX_PASSWORD => Err(AccountError::PasswordTooLong),
        _ => Ok(()),
    }
}

impl McpAuth {
    /// Creates a user with an email and password (what sign-up and `mcpauth user create` do).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        check_password(password)?;
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) if name.chars().count() > 200 => return Err(AccountError::NameTooLong),
            Some(name) => name.to_owned(),
            None => email.split('@').next().unwrap_or_default().to_owned(),
        };
        let hash = self
            .inner
            .passwords
            .hash(password.to_owned())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                AccountError::Unavailable
            })?;
        let now = self.now();
        let user = User {
            id: secret::random_id(),
            name,
            email,
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            disabled: false,
        };
        self.inner.store.create_user(&user, &hash).await?;
        Ok(user)
    }

    /// Checks an email and password, with the per-address and per-account limits.
    pub(crate) async fn check_credentials(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<User, AccountError> {
        let now = self.now();
        let limiter = &self.inner.limiter;
        limiter
            .hit(Limit::SignInPerIp, ip, now)
            .await
            .map_err(AccountError::RateLimited)?;
        let email = normalize_email(email).map_err(|_| AccountError::InvalidCredentials)?;
        // An account under attack stays locked for the window, even for the right password:
        // otherwise the limit would only slow the guesser down, not stop the lucky guess.
        limiter
            .check(Limit::SignInPerAccount, &email, now)
            .await
            .map_err(AccountError::RateLimited)?;
        let found = self.inner.store.user_by_email(&email).await?;
        let (user, hash) = match found {
            Some((user, hash)) if !user.disabled => (Some(user), hash),
            _ => (None, None),
        };
        let matches = self.inner.passwords.verify(password.to_owned(), hash).await;
        match user {
            Some(user) if matches => {
                self.audit(
                    "sign_in.success",
                    Some(&user.id),
                    None,
                    Some(ip),
                    Value::Null,
                )
                .await;
                Ok(user)
            }
            other => {
                self.audit(
                    "sign_in.failure",
                    other.as_ref().map(|u| u.id.as_str()),
                    None,
                    Some(ip),
                    json!({ "known_account": other.is_some() }),
                )
                .await;
                limiter
                    .hit(Limit::SignInPerAccount, &email, now)
                    .await
                    .map_err(AccountError::RateLimited)?;
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// Starts a browser session; returns the cookie to set.
    pub(crate) async fn start_session(
        &self,
        user: &User,
        headers: &HeaderMap,
        ip: &str,
    ) -> Result<(Session, HeaderValue), StoreError> {
        let token = secret::random_token();
        let now = self.now();
        let session = Session {
            id: secret::random_id(),
            token_hash: secret::hash_token(&token),
            user_id: user.id.clone(),
            expires_at: now + self.inner.options.session_expires_in,
            created_at: now,
            auth_time: now,
            ip_address: Some(ip.to_owned()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(512).collect()),
        };
        self.inner.store.create_session(&session).await?;
        let cookie = self.set_cookie(
            SESSION_COOKIE,
            &token,
            self.inner.options.session_expires_in,
        );
        Ok((session, cookie))
    }

    /// The browser's session, from its cookie.
    pub(crate) async fn browser_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(Session, User)>, StoreError> {
        match self.read_cookie(headers, SESSION_COOKIE) {
            Some(token) => {
                self.inner
                    .store
                    .session_by_token(&secret::hash_token(token), self.now())
                    .await
            }
            None => Ok(None),
        }
    }

    /// Ends the browser's session, if any.
    pub(crate) async fn end_session(&self, headers: &HeaderMap) -> Result<(), StoreError> {
        if let Some(token) = self.read_cookie(headers, SESSION_COOKIE) {
            self.inner
                .store
                .delete_session(&secret::hash_token(token))
                .await?;
        }
        Ok(())
    }

    /// Remembers an authorization request while the user signs in (signed, 10 minutes).
    pub(crate) fn pending_authorization_cookie(&self, query: &str) -> HeaderValue {
        let payload = json!({ "q": query, "exp": self.now() + PENDING_LIFETIME }).to_string();
        let value = self.sign_value(AUTHORIZE_COOKIE, &payload);
        self.set_cookie(AUTHORIZE_COOKIE, &value, PENDING_LIFETIME)
    }

    /// The authorization request remembered by [`Self::pending_authorization_cookie`], if it
    /// is intact and fresh.
    pub(crate) fn pending_authorization(&self, headers: &HeaderMap) -> Option<String> {
        let value = self.read_cookie(headers, AUTHORIZE_COOKIE)?;
        let payload: Value =
            serde_json::from_str(&self.verify_value(AUTHORIZE_COOKIE, value)?).ok()?;
        let expires = payload.get("exp")?.as_i64()?;
        if expires <= self.now() {
            return None;
        }
        payload.get("q")?.as_str().map(str::to_owned)
    }
}

const PENDING_LIFETIME: i64 = 600;

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "emailVerified": user.email_verified,
        "image": user.image,
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
    })
}

async fn json_params(
    auth: &McpAuth,
    request: Request,
) -> Result<(HeaderMap, axum::http::Extensions, Params), Response> {
    let (parts, body) = request.into_parts();
    if !auth.same_origin(&parts.headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "INVALID_ORIGIN",
            "requests from other sites are not accepted",
        )
        .into_response());
    }
    let bytes = read_body(body).await.map_err(IntoResponse::into_response)?;
    let params = Params::from_body(&parts.headers, &bytes, &[])
        .map_err(|e| ApiError::from(e).into_response())?;
    Ok((parts.headers, parts.extensions, params))
}

/// `POST {base}/sign-up/email` with `{email, password, name}`.
pub async fn sign_up_email(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let ip = auth.client_ip(&headers, &extensions);
    if let Err(limited) = auth
        .inner
        .limiter
        .hit(Limit::SignUpPerIp, &ip, auth.now())
        .await
    {
        return AccountError::RateLimited(limited).into_api();
    }
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return ApiError::bad_request("INVALID_REQUEST", "email and password are required")
            .into_response();
    };
    let user = match auth.create_user(email, password, params.get("name")).await {
        Ok(user) => user,
        Err(error) => return error.into_api(),
    };
    signed_in_response(&auth, &user, &headers, &ip).await
}

/// `POST {base}/sign-in/email` with `{email, password}`. When the browser carries a pending
/// authorization request, the answer says where to continue: `{redirect: true, url}`.
pub async fn sign_in_email(State(auth): State<McpAuth>, request: Request) -> Response {
    let (headers, extensions, params) = match json_params(&auth, request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let ip = auth.client_ip(&headers, &extensions);
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return ApiError::bad_request("INVALID_REQUEST", "email and password are required")
            .into_response();
    };
    match auth.check_credentials(email, password, &ip).await {
        Ok(user) => signed_in_response(&auth, &user, &headers, &ip).await,
        Err(error) => error.into_api(),
    }
}

async fn signed_in_response(
    auth: &McpAuth,
    user: &User,
    headers: &HeaderMap,
    ip: &str,
) -> Response {
    let (session, cookie) = match auth.start_session(user, headers, ip).await {
        Ok(started) => started,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = json!({ "redirect": false, "token": null, "user": user_json(user) });
    let pending = auth.pending_authorization(headers);
    if let Some(query) = &pending {
        match auth.resume_authorization(query, &session, user).await {
            Ok(url) => {
                body["redirect"] = Value::Bool(true);
                body["url"] = Value::String(url);
            }
            Err(error) => {
                tracing::debug!(message = %error.message, "pending authorization not resumed");
            }
        }
    }
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    let response_headers = response.headers_mut();
    response_headers.append(header::SET_COOKIE, cookie);
    if pending.is_some() {
        response_headers.append(header::SET_COOKIE, auth.clear_cookie(AUTHORIZE_COOKIE));
    }
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST {base}/sign-out`.
pub async fn sign_out(State(auth): State<McpAuth>, request: Request) -> Response {
    let headers = request.headers();
    if !auth.same_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "INVALID_ORIGIN",
            "requests from other sites are not accepted",
        )
        .into_response();
    }
    if let Err(error) = auth.end_session(headers).await {
        return ApiError::from(error).into_response();
    }
    let mut response = axum::Json(json!({ "success": true })).into_response();
    let response_headers = response.headers_mut();
    response_headers.append(header::SET_COOKIE, auth.clear_cookie(SESSION_COOKIE));
    response_headers.append(header::SET_COOKIE, auth.clear_cookie(AUTHORIZE_COOKIE));
    response
}

/// `GET {base}/get-session`: the browser's session and user, or `null`.
pub async fn get_session(State(auth): State<McpAuth>, headers: HeaderMap) -> Response {
    let body = match auth.browser_session(&headers).await {
        Ok(Some((session, user))) => json!({
            "session": {
                "id": session.id,
                "userId": session.user_id,
                "expiresAt": session.expires_at,
                "createdAt": session.created_at,
            },
            "user": user_json(&user),
        }),
        Ok(None) => Value::Null,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
