//! `/account`: who is signed in, the apps connected to the account (each revocable at once,
//! SECURITY S14), the other browser sessions, a password change, sign-out and "sign out
//! everywhere". Every action is a CSRF-protected form post answered with 303 (S19, S25).

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::{GrantSummary, Session, User};

use super::{form_post, render, see_other};
use crate::McpAuth;
use crate::account_api::check_credentials;
use crate::browser_session::browser_session;
use crate::connections::ConnectionView;
use crate::errors::{FormRefusal, PageError, sentence};
use crate::password_accounts::{AccountError, MIN_PASSWORD};
use crate::views::{AccountPage, AppView, ScopeView, ServiceView, describe_scope};
use crate::web::{AUTHORIZE_COOKIE, SESSION_COOKIE};
use mcpauth_core::Params;
use mcpauth_core::{Password, UtcDateTime};

/// Where a browser without a session is sent.
const SIGN_IN: &str = "/sign-in?return_to=/account";

/// What the page says after an action; the query names one of these, never free text.
const NOTICES: &[(&str, &str)] = &[
    (
        "revoked",
        "The app was disconnected. Its tokens no longer work.",
    ),
    ("sessions", "You were signed out of every other session."),
    ("password", "Your password was changed."),
    (
        "linked",
        "The sign-in method was linked. You can now sign in with it.",
    ),
    ("unlinked", "The sign-in method was removed."),
    (
        "connected",
        "The service was connected. Your tools can now use it as you.",
    ),
    (
        "disconnected",
        "The service was disconnected and its access revoked.",
    ),
    (
        "password-apps",
        "Your password was changed and every app was disconnected.",
    ),
];

/// `GET /account`.
pub async fn account_page(
    State(auth): State<McpAuth>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (session, user) = match browser_session(&auth, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return see_other(SIGN_IN, []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    let done = params.get("done").unwrap_or_default();
    let notice = NOTICES
        .iter()
        .find(|(key, _)| *key == done)
        .map(|(_, text)| *text);
    // The password form posts to `…#change-password`, and the browser keeps that fragment
    // through the redirect: its notice shows in that section, where the page opens.
    let message = match notice {
        Some(text) if done.starts_with("password") => Message::Password(Ok(text)),
        Some(text) => Message::Top(text),
        None => Message::None,
    };
    show(&auth, &headers, &session, &user, StatusCode::OK, message).await
}

/// What the account page says besides its content.
pub(super) enum Message<'a> {
    None,
    /// At the top of the page.
    Top(&'a str),
    /// In the password section: the change went through (`Ok`) or was refused (`Err`).
    Password(Result<&'a str, &'a str>),
    /// In the sign-in methods section: why an unlink was refused.
    Methods(&'a str),
}

/// Renders the account page for this session.
pub(super) async fn show(
    auth: &McpAuth,
    headers: &HeaderMap,
    session: &Session,
    user: &User,
    status: StatusCode,
    message: Message<'_>,
) -> Response {
    let store = &auth.store();
    let now = auth.now();
    let (grants, sessions, methods, connected) = match tokio::try_join!(
        store.grants(Some(&user.id), None, now),
        store.user_sessions(&user.id, now),
        super::sign_in_methods::methods(auth, &user.id),
        auth.connections().list(&user.id),
    ) {
        Ok(found) => found,
        Err(error) => return PageError::from(error).into_response(),
    };
    let (csrf, csrf_cookie) = auth.site().csrf_token(headers);
    let page = AccountPage {
        csrf_token: &csrf,
        user_name: &user.name,
        user_email: &user.email,
        email_verified: user.email_verified,
        can_send_verification: !user.email_verified && auth.email().sends_verification(),
        notice: match message {
            Message::Top(text) => Some(text),
            _ => None,
        },
        password_notice: match message {
            Message::Password(Ok(text)) => Some(text),
            _ => None,
        },
        password_error: match message {
            Message::Password(Err(text)) => Some(text),
            _ => None,
        },
        apps: apps(grants),
        other_sessions: sessions.iter().filter(|s| s.id != session.id).count(),
        password_change_revokes_apps: auth.options().revoke_grants_on_password_change,
        min_password: MIN_PASSWORD,
        methods_error: match message {
            Message::Methods(text) => Some(text),
            _ => None,
        },
        has_password: methods.0.iter().any(|m| m.id == "credential"),
        sign_in_methods: methods.0,
        linkable_providers: methods.1,
        services: services(auth, connected),
    };
    render(status, &page, csrf_cookie)
}

/// One entry per client: a client authorized more than once shows once, with every scope it
/// holds, when it was first authorized and when it was last used (one Revoke ends them all).
fn apps(grants: Vec<GrantSummary>) -> Vec<AppView> {
    let mut merged: Vec<(GrantSummary, Vec<String>)> = Vec::new();
    for grant in grants {
        let scopes: Vec<String> = grant.scopes.iter().map(str::to_owned).collect();
        match merged
            .iter_mut()
            .find(|(g, _)| g.client_id == grant.client_id)
        {
            Some((first, all)) => {
                first.created_at = first.created_at.min(grant.created_at);
                first.last_used_at = first.last_used_at.max(grant.last_used_at);
                for scope in scopes {
                    if !all.contains(&scope) {
                        all.push(scope);
                    }
                }
            }
            None => merged.push((grant, scopes)),
        }
    }
    merged
        .into_iter()
        .map(|(grant, scopes)| {
            let name = grant
                .client_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty());
            let named = name.is_some();
            let name = name.unwrap_or(&grant.client_id).to_owned();
            let letter = name
                .chars()
                .find(|c| c.is_alphanumeric())
                .map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect());
            AppView {
                verified_host: mcpauth_core::cimd::is_document_url(&grant.client_id)
                    .then(|| mcpauth_core::cimd::document_host(&grant.client_id))
                    .flatten(),
                logo_uri: grant.logo_uri.filter(|uri| is_https(uri)),
                scopes: scopes
                    .into_iter()
                    .map(|scope| ScopeView {
                        description: describe_scope(&scope),
                        name: scope,
                    })
                    .collect(),
                authorized_at: utc_text(grant.created_at),
                authorized_iso: utc_iso(grant.created_at),
                last_used_at: utc_text(grant.last_used_at),
                last_used_iso: utc_iso(grant.last_used_at),
                client_id: grant.client_id,
                name,
                named,
                letter,
            }
        })
        .collect()
}

/// Every configured connection, with the user's connection to it if any.
fn services(auth: &McpAuth, mut connected: Vec<ConnectionView>) -> Vec<ServiceView> {
    auth.connections()
        .configured()
        .map(|configured| {
            let found = connected
                .iter()
                .position(|c| c.connection_id == configured.id)
                .map(|i| connected.swap_remove(i));
            ServiceView {
                id: configured.id.clone(),
                name: configured.name.clone(),
                connected: found.is_some(),
                reconnect_needed: found.as_ref().is_some_and(|c| c.reconnect_needed),
                scopes: found.as_ref().map(|c| c.scopes.clone()).unwrap_or_default(),
                connected_at: found
                    .as_ref()
                    .map(|c| utc_text(c.connected_at))
                    .unwrap_or_default(),
                last_used_at: found
                    .as_ref()
                    .and_then(|c| c.last_used_at)
                    .map_or_else(|| "never".to_owned(), utc_text),
            }
        })
        .collect()
}

fn is_https(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|url| url.scheme() == "https" && url.host().is_some())
}

pub(super) fn utc_text(unix: i64) -> String {
    let t = UtcDateTime::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `2026-11-26T06:40Z`, for `<time datetime>`.
fn utc_iso(unix: i64) -> String {
    let t = UtcDateTime::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// A checked form post from a signed-in browser: its session, user, address and fields.
pub(super) struct AccountPost {
    pub(super) headers: HeaderMap,
    pub(super) ip: String,
    pub(super) params: Params,
    pub(super) session: Session,
    pub(super) user: User,
}

pub(super) async fn account_post(
    auth: &McpAuth,
    request: Request,
) -> Result<AccountPost, Response> {
    let (parts, params) = form_post(auth, request)
        .await
        .map_err(IntoResponse::into_response)?;
    match browser_session(auth, &parts.headers).await {
        Ok(Some((session, user))) => Ok(AccountPost {
            ip: auth.site().client_ip(&parts.headers, &parts.extensions),
            headers: parts.headers,
            params,
            session,
            user,
        }),
        Ok(None) => Err(see_other(SIGN_IN, [])),
        Err(error) => Err(PageError::from(error).into_response()),
    }
}

impl AccountPost {
    /// Appends to the security log (never fatal).
    pub(super) async fn audit(&self, auth: &McpAuth, kind: &str, client_id: Option<&str>) {
        let detail = serde_json::json!({ "via": "account_page" });
        auth.audit(kind, Some(&self.user.id), client_id, Some(&self.ip), detail)
            .await;
    }
}

/// `POST /account/revoke` with `client_id`: ends every grant the user gave that client; its
/// access and refresh tokens stop working at once (S14) and it must ask for consent again.
pub async fn revoke_app(State(auth): State<McpAuth>, request: Request) -> Response {
    let post = match account_post(&auth, request).await {
        Ok(post) => post,
        Err(response) => return response,
    };
    let Some(client_id) = post.params.get("client_id").filter(|id| !id.is_empty()) else {
        return PageError::bad_request("Choose the app to disconnect.").into_response();
    };
    let store = &auth.store();
    let revoked = store
        .revoke_grants(&post.user.id, Some(client_id), auth.now())
        .await;
    auth.forget_validated_tokens();
    match revoked {
        Ok(0) => see_other("/account", []),
        Ok(_) => {
            post.audit(&auth, "account.grant.revoke", Some(client_id))
                .await;
            see_other("/account?done=revoked", [])
        }
        Err(error) => PageError::from(error).into_response(),
    }
}

/// `POST /account/sessions/revoke-others`: ends every session of the user but this one.
pub async fn revoke_other_sessions(State(auth): State<McpAuth>, request: Request) -> Response {
    let post = match account_post(&auth, request).await {
        Ok(post) => post,
        Err(response) => return response,
    };
    let store = &auth.store();
    if let Err(error) = store
        .delete_user_sessions(&post.user.id, Some(&post.session.id))
        .await
    {
        return PageError::from(error).into_response();
    }
    post.audit(&auth, "account.sessions.revoke_others", None)
        .await;
    see_other("/account?done=sessions", [])
}

/// `POST /account/sessions/revoke-all` ("sign out everywhere"): ends every session of the
/// user, this one included, and disconnects every app, so that no token issued for the account
/// keeps working (S14).
pub async fn revoke_all_sessions(State(auth): State<McpAuth>, request: Request) -> Response {
    let post = match account_post(&auth, request).await {
        Ok(post) => post,
        Err(response) => return response,
    };
    let store = &auth.store();
    let user = &post.user.id;
    // Grants first: should ending the sessions fail, the page still works to try again.
    let revoked = store.revoke_grants(user, None, auth.now()).await;
    auth.forget_validated_tokens();
    if let Err(error) = revoked {
        return PageError::from(error).into_response();
    }
    if let Err(error) = store.delete_user_sessions(user, None).await {
        return PageError::from(error).into_response();
    }
    post.audit(&auth, "account.sessions.revoke_all", None).await;
    see_other(
        "/sign-in",
        [
            auth.site().clear_cookie(SESSION_COOKIE),
            auth.site().clear_cookie(AUTHORIZE_COOKIE),
        ],
    )
}

/// `POST /account/password` with `current_password` and `new_password`: checks the current
/// password (argon2id, with the sign-in rate limits), stores the new one, ends every other
/// session and, with `revoke_grants_on_password_change`, disconnects every app (S14). A
/// refusal shows the page again with the reason: 400 for an unacceptable new password, 401 for
/// a wrong current one.
pub async fn change_password(State(auth): State<McpAuth>, request: Request) -> Response {
    let post = match account_post(&auth, request).await {
        Ok(post) => post,
        Err(response) => return response,
    };
    match set_new_password(&auth, &post).await {
        Ok(revoked_apps) => {
            post.audit(&auth, "account.password.change", None).await;
            let done = if revoked_apps {
                "/account?done=password-apps"
            } else {
                "/account?done=password"
            };
            see_other(done, [])
        }
        Err(FormRefusal::Page(status, message)) => {
            show(
                &auth,
                &post.headers,
                &post.session,
                &post.user,
                status,
                Message::Password(Err(&message)),
            )
            .await
        }
        Err(FormRefusal::Failed(error)) => error.into_response(),
    }
}

/// Changes the password; true when every app was disconnected too.
async fn set_new_password(auth: &McpAuth, post: &AccountPost) -> Result<bool, FormRefusal> {
    let current = post.params.get("current_password").unwrap_or_default();
    let new = post.params.get("new_password").unwrap_or_default();
    if let Err(error) = Password::parse(new) {
        return Err(FormRefusal::Page(
            StatusCode::BAD_REQUEST,
            format!("The new {}.", error.to_string().trim_start_matches("the ")),
        ));
    }
    match check_credentials(auth, &post.user.email, current, &post.ip).await {
        Ok(checked) if checked.id == post.user.id => {}
        Ok(_) | Err(AccountError::InvalidCredentials) => {
            return Err(FormRefusal::Page(
                StatusCode::UNAUTHORIZED,
                "Your current password is not correct.".to_owned(),
            ));
        }
        Err(error) => {
            return Err(FormRefusal::Page(
                error.page_status(),
                sentence(&error.to_string()),
            ));
        }
    }
    let hash =
        auth.accounts().hash_password(new).await.map_err(|error| {
            FormRefusal::Page(error.page_status(), sentence(&error.to_string()))
        })?;
    let store = &auth.store();
    let now = auth.now();
    let user = &post.user.id;
    store.set_password(user, &hash, now).await?;
    store
        .delete_user_sessions(user, Some(&post.session.id))
        .await?;
    let revoke_apps = auth.options().revoke_grants_on_password_change;
    if revoke_apps {
        let revoked = store.revoke_grants(user, None, now).await;
        auth.forget_validated_tokens();
        revoked?;
    }
    Ok(revoke_apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_like_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_text(1_795_675_200), "2026-11-26 06:40 UTC");
        assert_eq!(utc_iso(1_795_675_200), "2026-11-26T06:40Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_text(-1), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn sentences_start_upper_case_and_end_with_a_period() {
        assert_eq!(
            sentence("the password must be at least 8 characters"),
            "The password must be at least 8 characters."
        );
    }

    #[test]
    fn only_https_logos_are_shown() {
        assert!(is_https("https://cdn.example.com/logo.png"));
        assert!(!is_https("http://cdn.example.com/logo.png"));
        assert!(!is_https("data:image/png;base64,AAAA"));
        assert!(!is_https("javascript:alert(1)"));
    }
}
