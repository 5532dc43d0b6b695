//! The sign-in flow: the start (`POST {base}/sign-in/social`, Better Auth's path, as a
//! form from the sign-in page or as JSON `{provider, callbackURL}`; `POST /account/link` from
//! the account page), and the callback (`GET {base}/callback/{id}`), which checks the state
//! (S28), maps the identity to a user (S29) and ends like a password sign-in. Which user is
//! core's decision (`mcpauth_core::account_linking::decide`): this file fetches its facts and
//! carries it out; every failure is a [`SignInFailure`], made a page in `errors.rs`.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::account_linking::{self, Candidate, Decision, Facts, Linking, ProviderRules};
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
use crate::errors::{ApiError, BadState, NoStore, SignInFailure};
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
) -> Result<Started, SignInFailure> {
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
    let value =
        serde_json::to_string(&pending).map_err(|e| SignInFailure::NotStarted(e.to_string()))?;
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

fn unavailable(provider: &SignInProvider, error: &IdentityProviderError) -> SignInFailure {
    tracing::warn!(provider = %provider.id, %error, "identity provider unavailable");
    SignInFailure::Unavailable
}

/// Counts a request against `sign_in_per_ip` (the start, the callback).
async fn sign_in_limit(auth: &McpAuth, ip: &str) -> Result<(), SignInFailure> {
    auth.limiter()
        .hit(Limit::SignInPerIp, ip, auth.now())
        .await
        .map_err(SignInFailure::RateLimited)
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
    if let Err(failure) = sign_in_limit(&auth, &ip).await {
        return failure.page_response("");
    }
    let Some(provider) = params
        .get("provider")
        .and_then(|id| auth.identity_provider(id))
    else {
        return SignInFailure::UnknownProvider.page_response("");
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
        Err(failure) => failure.page_response(&provider.name),
    }
}

async fn json_start(auth: &McpAuth, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !auth.site().same_origin(&parts.headers) {
        return ApiError::cross_origin().into_response();
    }
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(failure) = sign_in_limit(auth, &ip).await {
        return failure.api_response("");
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
        return SignInFailure::UnknownProvider.api_response("");
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
        Err(failure) => failure.api_response(&provider.name),
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
        Err(error) => return SignInFailure::from(error).page_response(""),
    };
    let Some(provider) = params
        .get("provider")
        .and_then(|id| auth.identity_provider(id))
    else {
        return SignInFailure::UnknownProvider.page_response("");
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
        Err(failure) => failure.page_response(&provider.name),
    }
}

/// `GET {base}/callback/{id}?code=…&state=…` (or `?error=…&state=…`). Counts against
/// `sign_in_per_ip` like the start, before the state is taken: a limited browser can come back
/// with the same answer once the window has passed.
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
    let name = provider.map_or("", |p| p.name.as_str());
    if let Err(failure) = sign_in_limit(&auth, &ip).await {
        return failure.page_response(name);
    }
    match callback(&auth, provider, query.as_deref(), headers, &ip).await {
        Ok(response) => response,
        Err(failure) => {
            auth.audit(
                "upstream_sign_in.refused",
                None,
                None,
                Some(&ip),
                json!({ "provider": provider.map(|p| p.id.as_str()), "reason": failure.reason() }),
            )
            .await;
            failure.page_response(name)
        }
    }
}

async fn callback(
    auth: &McpAuth,
    provider: Option<&SignInProvider>,
    query: Option<&str>,
    headers: &HeaderMap,
    ip: &str,
) -> Result<Response, SignInFailure> {
    let Some(provider) = provider else {
        return Err(SignInFailure::UnknownProvider);
    };
    let params = Params::from_query(query, &[]).map_err(|_| BadState::Unreadable)?;
    let Some(state) = params.get("state") else {
        return Err(BadState::Missing.into());
    };
    // Taken, not read: whatever happens next, this state can never be used again (S28).
    let Some(value) = auth
        .store()
        .take_verification(&verification_key(state), auth.now())
        .await?
    else {
        return Err(BadState::ExpiredOrUsed.into());
    };
    let pending: Pending = serde_json::from_str(&value).map_err(|_| BadState::RecordUnreadable)?;
    let browser = auth
        .site()
        .read_cookie(headers, BROWSER_COOKIE)
        .map(secret::hash_token)
        .unwrap_or_default();
    if !secret::constant_time_eq(browser.as_bytes(), pending.browser.as_bytes()) {
        return Err(BadState::OtherBrowser.into());
    }
    if pending.provider != provider.id {
        return Err(BadState::OtherProvider.into());
    }
    if let Some(error) = params.get("error") {
        return Err(if error == "access_denied" {
            SignInFailure::Cancelled
        } else {
            SignInFailure::ProviderError(error.chars().take(64).collect())
        });
    }
    let Some(code) = params.get("code") else {
        return Err(BadState::NoCode.into());
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
                SignInFailure::IdentityRefused
            }
            unreachable @ IdentityProviderError::Unavailable(_) => {
                unavailable(provider, &unreachable)
            }
        })?;

    // The facts of the linking decision (S29), fetched only as far as it reads them.
    let store = auth.store();
    let linked = store
        .user_by_account(&provider.id, &identity.subject)
        .await?;
    let signed_in_user = match &pending.link_user {
        Some(link_user) => match browser_session(auth, headers).await? {
            Some((_, user)) if user.id == *link_user => {
                let has_this_provider = has_provider(auth, &user, provider).await?;
                Some(Some((user, has_this_provider)))
            }
            _ => Some(None),
        },
        None => None,
    };
    let address = account_linking::address(&identity);
    let with_email = match (&linked, &signed_in_user, &address) {
        (None, None, Some(address)) => match store.user_by_email(address.as_str()).await? {
            Some((user, _)) => {
                let has_this_provider = has_provider(auth, &user, provider).await?;
                Some((user, has_this_provider))
            }
            None => None,
        },
        _ => None,
    };
    let decision = account_linking::decide(&Facts {
        identity: &identity,
        rules: ProviderRules {
            trust_email: provider.trust_email,
            required_claim: provider.required_claim.as_ref(),
        },
        allow_list: auth.email_allow_list(),
        linked: linked.as_ref(),
        with_email: with_email.as_ref().map(candidate),
        linking: signed_in_user.as_ref().map(|signed_in| match signed_in {
            Some(me) => Linking::SignedIn(candidate(me)),
            None => Linking::NotSignedIn,
        }),
    })?;

    let user = match decision {
        Decision::LinkToSignedInUser {
            user,
            already_linked,
        } => {
            if !already_linked {
                match store
                    .link_account(&user.id, &provider.id, &identity.subject, auth.now())
                    .await
                {
                    Ok(()) => {}
                    // Linked to someone else since the facts were read.
                    Err(StoreError::Conflict(_)) => {
                        return Err(account_linking::Refusal::LinkedElsewhere.into());
                    }
                    Err(error) => return Err(error.into()),
                }
            }
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
        Decision::SignIn(user) => user.clone(),
        Decision::LinkThenSignIn(existing) => {
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
            linked_user(auth, provider, &identity).await?
        }
        Decision::CreateUser {
            email,
            email_verified,
        } => create_user(auth, provider, &identity, email, email_verified, ip).await?,
    };
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

fn candidate((user, has_this_provider): &(User, bool)) -> Candidate<'_> {
    Candidate {
        user,
        has_this_provider: *has_this_provider,
    }
}

/// Whether an identity of `provider` (any subject) is linked to `user`.
async fn has_provider(
    auth: &McpAuth,
    user: &User,
    provider: &SignInProvider,
) -> Result<bool, StoreError> {
    Ok(auth
        .store()
        .user_accounts(&user.id)
        .await?
        .iter()
        .any(|a| a.provider_id == provider.id))
}

/// A new user with the identity's address, linked to the identity.
async fn create_user(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
    email: Email,
    email_verified: bool,
    ip: &str,
) -> Result<User, SignInFailure> {
    let now = auth.now();
    let name = identity
        .name
        .as_deref()
        .map(|n| n.chars().take(100).collect::<String>());
    let name = DisplayName::parse(name.as_deref(), &email).map_err(|_| BadState::NameUnusable)?;
    let user = User {
        id: secret::random_id(),
        name: name.into_string(),
        email: email.into_string(),
        email_verified,
        image: identity
            .picture
            .clone()
            .filter(|p| p.len() <= 2048 && p.starts_with("https://")),
        created_at: now,
        updated_at: now,
        disabled: false,
    };
    match auth
        .store()
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

/// The user the identity is linked to, read again after linking it.
async fn linked_user(
    auth: &McpAuth,
    provider: &SignInProvider,
    identity: &ProviderIdentity,
) -> Result<User, SignInFailure> {
    auth.store()
        .user_by_account(&provider.id, &identity.subject)
        .await?
        .ok_or(SignInFailure::TakenMeanwhile)
}
