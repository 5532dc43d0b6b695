//! The sign-in flow: the start (`POST {base}/sign-in/social`, Better Auth's path, as a
//! form from the sign-in page or as JSON `{provider, callbackURL}`; `POST /account/link` from
//! the account page), and the callback (`GET {base}/callback/{id}`), which checks the state
//! (S28), maps the identity to a user (S29) and ends like a password sign-in.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::User;
use mcpauth_core::return_to;
use mcpauth_core::{DisplayName, Email, Params, StoreError, secret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    AuthorizationStart, CodeExchange, IdentityProviderError, ProviderIdentity, SignInProvider,
};
use crate::McpAuth;
use crate::browser_session::{browser_session, pending_authorization};
use crate::errors::{ApiError, NoStore, PageError};
use crate::pages::{form_post, form_query, see_other, signed_in};
use crate::params::{params_from_body, read_body};
use crate::rate_limit::Limit;

/// The cookie that binds a sign-in started in this browser to its callback: a random value
/// whose hash the server-side record keeps.
const BROWSER_COOKIE: &str = "mcpauth.upstream";
/// How long a started sign-in may take at the provider.
const PENDING_LIFETIME: i64 = 600;

/// What the server keeps between the start and the callback, under the hash of `state`.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    nonce: String,
    verifier: String,
    /// Hash of the browser cookie's value.
    browser: String,
    /// The MCP authorization request to resume afterwards.
    authorize: Option<String>,
    /// Where to go afterwards when there is none (a same-origin path).
    return_to: Option<String>,
    /// Set when a signed-in user links this provider from the account page.
    link_user: Option<String>,
}

fn verification_key(state: &str) -> String {
    format!("upstream-state:{}", secret::hash_token(state))
}

/// What a started sign-in returns: where to send the browser, and the cookie to set.
struct Started {
    url: String,
    cookie: HeaderValue,
}

/// Records a new sign-in at `provider` and returns the provider's authorization URL.
async fn start(
    auth: &McpAuth,
    headers: &HeaderMap,
    provider: &SignInProvider,
    authorize: Option<String>,
    return_to: Option<String>,
    link_user: Option<String>,
) -> Result<Started, PageError> {
    let browser = match auth.site().read_cookie(headers, BROWSER_COOKIE) {
        Some(existing) if existing.len() >= 32 => existing.to_owned(),
        _ => secret::random_token(),
    };
    let state = secret::random_token();
    let nonce = secret::random_token();
    let verifier = secret::random_token();
    let pending = Pending {
        provider: provider.id.clone(),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        browser: secret::hash_token(&browser),
        authorize,
        return_to,
        link_user,
    };
    let value = serde_json::to_string(&pending)
        .map_err(|e| PageError::bad_request(format!("The sign-in could not be started: {e}.")))?;
    let now = auth.now();
    auth.store()
        .put_verification(
            &verification_key(&state),
            &value,
            now + PENDING_LIFETIME,
            now,
        )
        .await?;
    let redirect_uri = callback_url(auth, &provider.id);
    let url = provider
        .provider
        .authorization_url(&AuthorizationStart {
            redirect_uri: &redirect_uri,
            state: &state,
            nonce: &nonce,
            code_verifier: &verifier,
        })
        .await
        .map_err(|error| unavailable(provider, &error))?;
    Ok(Started {
        url: url.to_string(),
        cookie: auth
            .site()
            .set_cookie(BROWSER_COOKIE, &browser, PENDING_LIFETIME),
    })
}

/// `{issuer}{base_path}/callback/{id}`: what to register at the provider.
pub(crate) fn callback_url(auth: &McpAuth, provider_id: &str) -> String {
    auth.endpoint(&format!("/callback/{provider_id}"))
}

fn unavailable(provider: &SignInProvider, error: &IdentityProviderError) -> PageError {
    tracing::warn!(provider = %provider.id, %error, "identity provider unavailable");
    PageError::new(
        StatusCode::BAD_GATEWAY,
        format!("{} is not answering", provider.name),
        format!(
            "Signing in with {} did not work because it could not be reached. Try again in a moment.",
            provider.name
        ),
    )
}

fn unknown_provider() -> PageError {
    PageError::bad_request("There is no such sign-in provider.")
}

/// `POST {base}/sign-in/social`: a form from the sign-in page (`provider`, `csrf_token`, the
/// sealed `authorize_query`, `return_to`), answered with 303 to the provider; or Better Auth's
/// JSON `{provider, callbackURL}`, answered with `{url, redirect: true}`.
pub(crate) async fn sign_in_start(State(auth): State<McpAuth>, request: Request) -> Response {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        return json_start(&auth, request).await;
    }
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(limited) = auth
        .limiter()
        .hit(Limit::SignInPerIp, &ip, auth.now())
        .await
    {
        return limited.annotate(
            PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!(
                    "Too many sign-in attempts; try again in {} seconds.",
                    limited.retry_after
                ),
            )
            .into_response(),
        );
    }
    let Some(provider) = params
        .get("provider")
        .and_then(|id| auth.identity_provider(id))
    else {
        return unknown_provider().into_response();
    };
    let authorize = form_query(&auth, &params);
    let return_to = match authorize {
        Some(_) => None,
        None => params
            .get("return_to")
            .and_then(|raw| return_to::same_origin(raw, &auth.options().issuer).ok())
            .map(|target| target.into_owned()),
    };
    match start(&auth, &parts.headers, provider, authorize, return_to, None).await {
        Ok(started) => see_other(&started.url, [started.cookie]),
        Err(error) => error.into_response(),
    }
}

async fn json_start(auth: &McpAuth, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !auth.site().same_origin(&parts.headers) {
        return ApiError::cross_origin().into_response();
    }
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(limited) = auth
        .limiter()
        .hit(Limit::SignInPerIp, &ip, auth.now())
        .await
    {
        return crate::password_accounts::AccountError::RateLimited(limited).into_response();
    }
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let params = match params_from_body(&parts.headers, &bytes, &[]) {
        Ok(params) => params,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let Some(provider) = params
        .get("provider")
        .and_then(|id| auth.identity_provider(id))
    else {
        return ApiError::bad_request("PROVIDER_NOT_FOUND", "no such provider").into_response();
    };
    // The authorization request in progress, as the JSON sign-in resumes it.
    let authorize = pending_authorization(auth, &parts.headers);
    let return_to = params
        .get("callbackURL")
        .and_then(|raw| return_to::same_origin(raw, &auth.options().issuer).ok())
        .map(|target| target.into_owned());
    match start(auth, &parts.headers, provider, authorize, return_to, None).await {
        Ok(started) => {
            let mut response = NoStore(axum::Json(json!({
                "url": started.url,
                "redirect": true,
            })))
            .into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, started.cookie);
            response
        }
        Err(error) => {
            ApiError::new(error.status, "UPSTREAM_UNAVAILABLE", error.message).into_response()
        }
    }
}

/// `POST /account/link` with `provider`: a signed-in user adds a way to sign in. The
/// callback links the account to this user whatever its email says, as long as the
/// same browser is still signed in as them.
pub(crate) async fn link_start(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let user = match browser_session(&auth, &parts.headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return see_other("/sign-in?return_to=/account", []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let Some(provider) = params
        .get("provider")
        .and_then(|id| auth.identity_provider(id))
    else {
        return unknown_provider().into_response();
    };
    match start(
        &auth,
        &parts.headers,
        provider,
        None,
        Some("/account".to_owned()),
        Some(user.id),
    )
    .await
    {
        Ok(started) => see_other(&started.url, [started.cookie]),
        Err(error) => error.into_response(),
    }
}

/// A sign-in that ends on an error page, with the reason for the audit log.
struct Refusal {
    page: PageError,
    reason: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, title: &str, message: String) -> Self {
        Self {
            page: PageError::new(status, title, message),
            reason,
        }
    }

    fn bad_state(message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "state",
            "This sign-in can't be completed",
            format!("{message} Go back to the sign-in page and start again."),
        )
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self {
            page: error.into(),
            reason: "storage",
        }
    }
}

/// `GET {base}/callback/{id}?code=…&state=…` (or `?error=…&state=…`).
pub(crate) async fn provider_callback(
    State(auth): State<McpAuth>,
    Path(provider_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let headers = &parts.headers;
    let ip = auth.site().client_ip(headers, &parts.extensions);
    let provider = auth.identity_provider(&provider_id);
    match callback(&auth, provider, query.as_deref(), headers, &ip).await {
        Ok(response) => response,
        Err(refusal) => {
            auth.audit(
                "upstream_sign_in.refused",
                None,
                None,
                Some(&ip),
                json!({ "provider": provider.map(|p| p.id.as_str()), "reason": refusal.reason }),
            )
            .await;
            refusal.page.into_response()
        }
    }
}

async fn callback(
    auth: &McpAuth,
    provider: Option<&SignInProvider>,
    query: Option<&str>,
    headers: &HeaderMap,
    ip: &str,
) -> Result<Response, Refusal> {
    let Some(provider) = provider else {
        return Err(Refusal {
            page: unknown_provider(),
            reason: "unknown_provider",
        });
    };
    let params = Params::from_query(query, &[])
        .map_err(|_| Refusal::bad_state("The answer from the provider could not be read."))?;
    let Some(state) = params.get("state") else {
        return Err(Refusal::bad_state(
            "The answer from the provider has no state.",
        ));
    };
    // Taken, not read: whatever happens next, this state can never be used again (S28).
    let Some(value) = auth
        .store()
        .take_verification(&verification_key(state), auth.now())
        .await?
    else {
        return Err(Refusal::bad_state(
            "This sign-in has expired or was already completed.",
        ));
    };
    let pending: Pending = serde_json::from_str(&value)
        .map_err(|_| Refusal::bad_state("This sign-in could not be read."))?;
    let browser = auth
        .site()
        .read_cookie(headers, BROWSER_COOKIE)
        .map(secret::hash_token)
        .unwrap_or_default();
    if !secret::constant_time_eq(browser.as_bytes(), pending.browser.as_bytes()) {
        return Err(Refusal::bad_state(
            "This sign-in was started in another browser.",
        ));
    }
    if pending.provider != provider.id {
        return Err(Refusal::bad_state(
            "This sign-in was started with another provider.",
        ));
    }
    if let Some(error) = params.get("error") {
        return Err(if error == "access_denied" {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "Sign-in cancelled",
                format!(
                    "{} did not sign you in: the request was denied or cancelled.",
                    provider.name
                ),
            )
        } else {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "provider_error",
                "Sign-in failed",
                format!(
                    "{} could not sign you in ({}).",
                    provider.name,
                    error.chars().take(64).collect::<String>()
                ),
            )
        });
    }
    let Some(code) = params.get("code") else {
        return Err(Refusal::bad_state(
            "The answer from the provider has no code.",
        ));
    };
    let redirect_uri = callback_url(auth, &provider.id);
    let identity = provider
        .provider
        .identity(&CodeExchange {
            redirect_uri: &redirect_uri,
            code,
            code_verifier: &pending.verifier,
            nonce: &pending.nonce,
        })
        .await
        .map_err(|error| match error {
            IdentityProviderError::Refused(reason) => {
                tracing::info!(provider = %provider.id, %reason, "identity refused");
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "identity_refused",
                    "Sign-in failed",
                    format!(
                        "The answer from {} did not pass mcpauth's checks, so you were not signed in.",
                        provider.name
                    ),
                )
            }
            unreachable @ IdentityProviderError::Unavailable(_) => Refusal {
                page: unavailable(provider, &unreachable),
                reason: "unavailable",
            },
        })?;
    let email = check_rules(auth, provider, &identity)?;

    if let Some(link_user) = &pending.link_user {
        let user = link(auth, provider, &identity, link_user, headers).await?;
        auth.audit(
            "account_linked",
            Some(&user.id),
            None,
            Some(ip),
            json!({ "provider": provider.id, "via": "account_page" }),
        )
        .await;
        return Ok(see_other("/account?done=linked", []));
    }

    let user = account_for(auth, provider, &identity, email, ip).await?;
    auth.audit(
        "upstream_sign_in",
        Some(&user.id),
        None,
        Some(ip),
        json!({ "provider": provider.id }),
    )
    .await;
    Ok(signed_in(
        auth,
        headers,
        &user,
        ip,
        pending.authorize.as_deref(),
        pending.return_to.as_deref(),
    )
    .await)
}

/// The operator's rules for every sign-in (S29): the provider's required claim, and
/// the email allow-lists, which only a verified address passes. Returns the address and
/// whether it counts as verified.
fn check_rules(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
) -> Result<Option<(Email, bool)>, Refusal> {
    if let Some(required) = &provider.required_claim
        && !required.is_met_by(&identity.claims)
    {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "required_claim",
            "Not allowed",
            format!(
                "Your {} account is not allowed to sign in here.",
                provider.name
            ),
        ));
    }
    let email = identity
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .map(|e| (e, identity.email_verified || provider.trust_email));
    let allow = auth.email_allow_list();
    if !allow.is_open() {
        let allowed = matches!(&email, Some((address, true)) if allow.allows(address));
        if !allowed {
            return Err(not_allowed(provider));
        }
    }
    Ok(email)
}

fn not_allowed(provider: &SignInProvider) -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "email_not_allowed",
        "Not allowed",
        format!(
            "The email address of your {} account is not allowed to sign in here, or {} did not say it is verified.",
            provider.name, provider.name
        ),
    )
}

/// The user this identity signs in as: the one it is linked to; else, with a verified email
/// on both sides, the user with that email (linked now); else a new user. An address that
/// belongs to a user but is not verified on both sides is refused rather than linked (S29).
async fn account_for(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
    email: Option<(Email, bool)>,
    ip: &str,
) -> Result<User, Refusal> {
    let store = auth.store();
    if let Some(user) = store
        .user_by_account(&provider.id, &identity.subject)
        .await?
    {
        return Ok(user);
    }
    let Some((email, verified)) = email else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "no_email",
            "No email address",
            format!(
                "{} did not share an email address, which a new account needs. Allow it to share your email and try again.",
                provider.name
            ),
        ));
    };
    if let Some((existing, _)) = store.user_by_email(email.as_str()).await? {
        let has_this_provider = store
            .user_accounts(&existing.id)
            .await?
            .iter()
            .any(|a| a.provider_id == provider.id);
        if existing.disabled {
            // Linked or not, a disabled user stays out: link nothing to them either.
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "disabled",
                "Account disabled",
                "This account is disabled. Ask the administrator to enable it.".to_owned(),
            ));
        }
        if verified && existing.email_verified && !has_this_provider {
            match store
                .link_account(&existing.id, &provider.id, &identity.subject, auth.now())
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error.into()),
            }
            auth.audit(
                "account_linked",
                Some(&existing.id),
                None,
                Some(ip),
                json!({ "provider": provider.id, "via": "verified_email" }),
            )
            .await;
            return linked_user(auth, provider, identity).await;
        }
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "email_in_use",
            "This email already has an account",
            format!(
                "An account with the email address of your {0} account exists, and it can't be joined automatically because the address is not verified on both sides. Sign in to that account another way, then link {0} from your account page.",
                provider.name
            ),
        ));
    }
    let now = auth.now();
    let name = identity
        .name
        .as_deref()
        .map(|n| n.chars().take(100).collect::<String>());
    let name = DisplayName::parse(name.as_deref(), &email)
        .map_err(|_| Refusal::bad_state("The name from the provider could not be used."))?;
    let user = User {
        id: secret::random_id(),
        name: name.into_string(),
        email: email.into_string(),
        email_verified: verified,
        image: identity
            .picture
            .clone()
            .filter(|p| p.len() <= 2048 && p.starts_with("https://")),
        created_at: now,
        updated_at: now,
        disabled: false,
    };
    match store
        .create_user_with_account(&user, &provider.id, &identity.subject)
        .await
    {
        Ok(()) => {
            auth.audit(
                "user.created",
                Some(&user.id),
                None,
                Some(ip),
                json!({ "provider": provider.id }),
            )
            .await;
            Ok(user)
        }
        // A concurrent first sign-in of the same person won: use what it created.
        Err(StoreError::Conflict(_)) => linked_user(auth, provider, identity).await,
        Err(error) => Err(error.into()),
    }
}

async fn linked_user(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
) -> Result<User, Refusal> {
    auth.store()
        .user_by_account(&provider.id, &identity.subject)
        .await?
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::CONFLICT,
                "email_in_use",
                "This email already has an account",
                format!(
                    "Another account uses the email address of your {} account.",
                    provider.name
                ),
            )
        })
}

/// Links the identity to the signed-in user who started the link, if this browser is still
/// signed in as them.
async fn link(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
    link_user: &str,
    headers: &HeaderMap,
) -> Result<User, Refusal> {
    let user = match browser_session(auth, headers).await? {
        Some((_, user)) if user.id == link_user => user,
        _ => {
            return Err(Refusal::bad_state(
                "You are no longer signed in as the account that started linking.",
            ));
        }
    };
    let store = auth.store();
    if let Some(owner) = store
        .user_by_account(&provider.id, &identity.subject)
        .await?
    {
        if owner.id == user.id {
            return Ok(user);
        }
        return Err(linked_elsewhere(provider));
    }
    if store
        .user_accounts(&user.id)
        .await?
        .iter()
        .any(|a| a.provider_id == provider.id)
    {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "already_linked",
            "Already linked",
            format!(
                "Another {0} account is linked to your account already. Unlink it first.",
                provider.name
            ),
        ));
    }
    match store
        .link_account(&user.id, &provider.id, &identity.subject, auth.now())
        .await
    {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(_)) => Err(linked_elsewhere(provider)),
        Err(error) => Err(error.into()),
    }
}

fn linked_elsewhere(provider: &SignInProvider) -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        "linked_elsewhere",
        "Linked to another account",
        format!(
            "This {} account already signs in to another account here.",
            provider.name
        ),
    )
}
