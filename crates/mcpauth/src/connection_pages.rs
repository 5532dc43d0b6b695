//! The browser side of connecting (SECURITY V2, in the manner of S28):
//!
//! - `POST /account/connections/connect` (the account page's Connect button) and
//!   `POST {base}/connections/{id}/connect` (the button of an elicitation link's page, after
//!   `GET` of the link shows who it connects) start the flow: `state` and the PKCE verifier
//!   are kept server-side for ten minutes under the hash of `state`, with the hash of a
//!   browser cookie and the signed-in user;
//! - `GET {base}/connections/{id}/callback` takes that record (single-use), checks the
//!   cookie, that the same user is still signed in in this browser and the connection id,
//!   then redeems the code and stores the tokens sealed;
//! - an elicitation link (a ticket, [`Connections::connect_url`](crate::Connections::connect_url)) is
//!   bound to one user: a browser signed in as anyone else connects nothing, and the ticket
//!   is taken at its first use;
//! - `POST /account/connections/disconnect` revokes at the provider, then deletes.
//!
//! Every refusal is a page that says why; nothing is stored.

use askama::Template;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpauth_core::{Params, secret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::McpAuth;
use crate::audit::security_event;
use crate::browser_session::browser_session;
use crate::connections::{ConnectTicket, ConnectionCompleted, ProviderError, ticket_key};
use crate::errors::PageError;
use crate::pages::{form_post, render, see_other};

/// The cookie that binds a started connect to this browser.
const BROWSER_COOKIE: &str = "mcpauth.connect";
/// How long a started connect may take at the provider.
const PENDING_LIFETIME: i64 = 600;

/// What is kept between the start and the callback, under the hash of `state`.
#[derive(Serialize, Deserialize)]
struct Pending {
    connection_id: String,
    user_id: String,
    verifier: String,
    /// Hash of the browser cookie's value.
    browser: String,
    elicitation_id: Option<String>,
}

fn state_key(state: &str) -> String {
    format!("connection-state:{}", secret::hash_token(state))
}

/// The page an elicitation link opens, and the page after a connect.
#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage<'a> {
    title: &'a str,
    /// Shown in a `role="status"` box.
    message: &'a str,
    /// The form that starts the connect (an elicitation link's page only).
    form: Option<ConnectForm<'a>>,
}

struct ConnectForm<'a> {
    action: &'a str,
    csrf_token: &'a str,
    ticket: &'a str,
    name: &'a str,
    email: &'a str,
}

fn refused(title: &str, message: &str) -> Response {
    PageError::new(StatusCode::BAD_REQUEST, title, message).into_response()
}

fn unavailable() -> Response {
    PageError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        "The service could not be reached. Nothing was connected.",
    )
    .into_response()
}

/// Records a connect for `user_id` and answers with the redirect to the provider.
async fn start(
    auth: &McpAuth,
    headers: &HeaderMap,
    user_id: &str,
    connection_id: &str,
    elicitation_id: Option<String>,
) -> Response {
    let connections = auth.connections();
    let Some(provider) = connections.provider(connection_id) else {
        return refused("Unknown service", "No such service can be connected.");
    };
    let browser = match auth.site().read_cookie(headers, BROWSER_COOKIE) {
        Some(existing) if existing.len() >= 32 => existing.to_owned(),
        _ => secret::random_token(),
    };
    let state = secret::random_token();
    let verifier = secret::random_token();
    let pending = Pending {
        connection_id: connection_id.to_owned(),
        user_id: user_id.to_owned(),
        verifier: verifier.clone(),
        browser: secret::hash_token(&browser),
        elicitation_id,
    };
    let Ok(value) = serde_json::to_string(&pending) else {
        return unavailable();
    };
    let now = auth.now();
    if let Err(error) = auth
        .store()
        .put_verification(&state_key(&state), &value, now + PENDING_LIFETIME, now)
        .await
    {
        return PageError::from(error).into_response();
    }
    let redirect_uri = connections.redirect_uri(connection_id);
    match provider
        .authorization_url(&redirect_uri, &state, &verifier)
        .await
    {
        Ok(url) => see_other(
            &url,
            [auth
                .site()
                .set_cookie(BROWSER_COOKIE, &browser, PENDING_LIFETIME)],
        ),
        Err(error) => {
            tracing::warn!(connection = %connection_id, %error, "connect could not start");
            unavailable()
        }
    }
}

/// `POST /account/connections/connect` with `connection`: the signed-in user connects a
/// service from the account page.
pub(crate) async fn connect_from_account(
    State(auth): State<McpAuth>,
    request: Request,
) -> Response {
    let (parts, params, user) = match account_form(&auth, request).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let connection_id = params.get("connection").unwrap_or_default();
    start(&auth, &parts.headers, &user.id, connection_id, None).await
}

/// A form posted from the account page (CSRF-checked) with the signed-in user; a signed-out
/// browser is sent to sign in and back to the account page.
async fn account_form(
    auth: &McpAuth,
    request: Request,
) -> Result<
    (
        axum::http::request::Parts,
        Params,
        mcpauth_core::model::User,
    ),
    Response,
> {
    let (parts, params) = form_post(auth, request)
        .await
        .map_err(IntoResponse::into_response)?;
    match browser_session(auth, &parts.headers).await {
        Ok(Some((_, user))) => Ok((parts, params, user)),
        Ok(None) => Err(see_other("/sign-in?return_to=/account", [])),
        Err(error) => Err(PageError::from(error).into_response()),
    }
}

/// The ticket of an elicitation link, when it is still unused and unexpired.
async fn peek_ticket(auth: &McpAuth, ticket: &str) -> Result<Option<ConnectTicket>, PageError> {
    let value = auth
        .store()
        .peek_verification(&ticket_key(ticket), auth.now())
        .await?;
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

fn link_expired() -> Response {
    refused(
        "This link has expired",
        "This connect link was already used or is more than ten minutes old. Ask your client to try again for a new one.",
    )
}

fn other_user() -> Response {
    refused(
        "This link is for another account",
        "This connect link was made for another mcpauth account than the one signed in here. Nothing was connected. Sign in as the account your client uses, then ask it for a new link.",
    )
}

/// `GET {base}/connections/{id}/connect?ticket=…`: an elicitation link. Shows what it would
/// connect to whom, with a button; opening it changes nothing (link scanners open links).
pub(crate) async fn connect_link_page(
    State(auth): State<McpAuth>,
    Path(connection_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::from_query(query.as_deref(), &[]).unwrap_or_default();
    let ticket = params.get("ticket").unwrap_or_default();
    let user = match browser_session(&auth, &headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => {
            let here = format!(
                "{}/connections/{connection_id}/connect?ticket={ticket}",
                auth.options().base_path
            );
            let back: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return see_other(&format!("/sign-in?return_to={back}"), []);
        }
        Err(error) => return PageError::from(error).into_response(),
    };
    let found = match peek_ticket(&auth, ticket).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let Some(found) = found.filter(|t| t.connection_id == connection_id) else {
        return link_expired();
    };
    if found.user_id != user.id {
        return other_user();
    }
    let Some(provider) = auth.connections().provider(&connection_id) else {
        return refused("Unknown service", "No such service can be connected.");
    };
    let (csrf, csrf_cookie) = auth.site().csrf_token(&headers);
    let action = format!(
        "{}/connections/{connection_id}/connect",
        auth.options().base_path
    );
    let title = format!("Connect {}", provider.options.name);
    let message = format!(
        "Your MCP client asks to use {} as you. You will be sent to {} to allow it.",
        provider.options.name, provider.options.name
    );
    render(
        StatusCode::OK,
        &ConnectPage {
            title: &title,
            message: &message,
            form: Some(ConnectForm {
                action: &action,
                csrf_token: &csrf,
                ticket,
                name: &provider.options.name,
                email: &user.email,
            }),
        },
        csrf_cookie,
    )
}

/// `POST {base}/connections/{id}/connect` with `ticket`: takes the ticket (single-use) and,
/// when it was made for the signed-in user, starts the connect.
pub(crate) async fn connect_from_link(
    State(auth): State<McpAuth>,
    Path(connection_id): Path<String>,
    request: Request,
) -> Response {
    let (parts, params) = match form_post(&auth, request).await {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let user = match browser_session(&auth, &parts.headers).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return see_other("/sign-in", []),
        Err(error) => return PageError::from(error).into_response(),
    };
    let ticket = params.get("ticket").unwrap_or_default();
    // Taken, not read: whoever presents it, it is never used again.
    let taken = match auth
        .store()
        .take_verification(&ticket_key(ticket), auth.now())
        .await
    {
        Ok(taken) => taken,
        Err(error) => return PageError::from(error).into_response(),
    };
    let Some(found) = taken.and_then(|v| serde_json::from_str::<ConnectTicket>(&v).ok()) else {
        return link_expired();
    };
    if found.connection_id != connection_id {
        return link_expired();
    }
    if found.user_id != user.id {
        auth.audit(
            "connection.refused",
            Some(&user.id),
            None,
            None,
            json!({ "connection": connection_id, "reason": "link_of_another_user" }),
        )
        .await;
        return other_user();
    }
    start(
        &auth,
        &parts.headers,
        &user.id,
        &connection_id,
        Some(found.elicitation_id),
    )
    .await
}

/// Why a callback connected nothing (the audit entry's reason).
enum Refusal {
    NoState,
    ExpiredOrUsed,
    OtherBrowser,
    OtherUser,
    OtherConnection,
    Cancelled,
    ProviderError,
    NoCode,
    CodeRefused,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Self::NoState => "no_state",
            Self::ExpiredOrUsed => "state_expired_or_used",
            Self::OtherBrowser => "other_browser",
            Self::OtherUser => "other_user",
            Self::OtherConnection => "other_connection",
            Self::Cancelled => "cancelled",
            Self::ProviderError => "provider_error",
            Self::NoCode => "no_code",
            Self::CodeRefused => "code_refused",
        }
    }

    fn page(&self) -> Response {
        let message = match self {
            Self::NoState | Self::ExpiredOrUsed | Self::OtherConnection | Self::NoCode => {
                "This answer from the service is not for a connect in progress (it was used already, or is more than ten minutes old). Nothing was connected."
            }
            Self::OtherBrowser => {
                "This connect was started in another browser. Nothing was connected; start again here."
            }
            Self::OtherUser => {
                "This connect was started by another account than the one signed in here. Nothing was connected."
            }
            Self::Cancelled => "You did not allow access. Nothing was connected.",
            Self::ProviderError | Self::CodeRefused => {
                "The service refused the connect. Nothing was connected; try again."
            }
        };
        refused("Not connected", message)
    }
}

/// `GET {base}/connections/{id}/callback?code=…&state=…` (or `?error=…&state=…`).
pub(crate) async fn connection_callback(
    State(auth): State<McpAuth>,
    Path(connection_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let headers = &parts.headers;
    let ip = auth.site().client_ip(headers, &parts.extensions);
    match callback(&auth, &connection_id, query.as_deref(), headers).await {
        Ok(response) => response,
        Err(Stop::Refused(refusal)) => {
            auth.audit(
                "connection.refused",
                None,
                None,
                Some(&ip),
                json!({
                    "connection": auth.connections().provider(&connection_id).map(|_| connection_id.as_str()),
                    "reason": refusal.reason(),
                }),
            )
            .await;
            refusal.page()
        }
        Err(Stop::Unavailable) => unavailable(),
        Err(Stop::Store(error)) => PageError::from(error).into_response(),
    }
}

/// Why a callback stopped: a refusal (audited), or a failure of ours or the provider's.
enum Stop {
    Refused(Refusal),
    Unavailable,
    Store(mcpauth_core::StoreError),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<mcpauth_core::StoreError> for Stop {
    fn from(error: mcpauth_core::StoreError) -> Self {
        Self::Store(error)
    }
}

type CallbackResult = Result<Response, Stop>;

async fn callback(
    auth: &McpAuth,
    connection_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> CallbackResult {
    let params = Params::from_query(query, &[]).map_err(|_| Refusal::NoState)?;
    let state = params.get("state").ok_or(Refusal::NoState)?;
    // Taken, not read: whatever happens next, this state is never used again.
    let value = auth
        .store()
        .take_verification(&state_key(state), auth.now())
        .await?
        .ok_or(Refusal::ExpiredOrUsed)?;
    let pending: Pending = serde_json::from_str(&value).map_err(|_| Refusal::ExpiredOrUsed)?;
    let browser = auth
        .site()
        .read_cookie(headers, BROWSER_COOKIE)
        .map(secret::hash_token)
        .unwrap_or_default();
    if !secret::constant_time_eq(browser.as_bytes(), pending.browser.as_bytes()) {
        return Err(Refusal::OtherBrowser.into());
    }
    let signed_in = browser_session(auth, headers).await?.map(|(_, user)| user);
    let Some(user) = signed_in.filter(|u| u.id == pending.user_id) else {
        return Err(Refusal::OtherUser.into());
    };
    if pending.connection_id != connection_id {
        return Err(Refusal::OtherConnection.into());
    }
    let connections = auth.connections();
    let provider = connections
        .provider(connection_id)
        .ok_or(Refusal::OtherConnection)?;
    if let Some(error) = params.get("error") {
        return Err(if error == "access_denied" {
            Refusal::Cancelled
        } else {
            Refusal::ProviderError
        }
        .into());
    }
    let code = params.get("code").ok_or(Refusal::NoCode)?;
    let answer = provider
        .exchange_code(
            &connections.redirect_uri(connection_id),
            code,
            &pending.verifier,
        )
        .await
        .map_err(|error| match error {
            ProviderError::Refused(_) => Stop::Refused(Refusal::CodeRefused),
            ProviderError::Unavailable(reason) => {
                tracing::warn!(connection = %connection_id, %reason, "code exchange failed");
                Stop::Unavailable
            }
        })?;
    let tokens = connections
        .seal(&user.id, connection_id, &answer, None, None)
        .map_err(|_| Stop::Unavailable)?;
    let now = auth.now();
    let audit = security_event(
        now,
        "connection.connected",
        Some(&user.id),
        None,
        None,
        json!({
            "connection": connection_id,
            "scopes": tokens.scopes,
            "via": if pending.elicitation_id.is_some() { "elicitation" } else { "account_page" },
        }),
    );
    auth.store()
        .save_connection(&user.id, connection_id, &tokens, now, &audit)
        .await?;
    metrics::counter!(
        "mcpauth_connection_events_total",
        "connection" => connection_id.to_owned(),
        "event" => "connected"
    )
    .increment(1);
    connections.completed(ConnectionCompleted {
        user_id: user.id.clone(),
        connection_id: connection_id.to_owned(),
        elicitation_id: pending.elicitation_id.clone(),
    });
    // The browser cookie has done its work.
    let clear = auth.site().set_cookie(BROWSER_COOKIE, "", 0);
    if pending.elicitation_id.is_some() {
        let title = format!("{} is connected", provider.options.name);
        return Ok(render(
            StatusCode::OK,
            &ConnectPage {
                title: &title,
                message: "You can close this tab and return to your client: it can now use the service as you.",
                form: None,
            },
            [clear],
        ));
    }
    Ok(see_other("/account?done=connected", [clear]))
}

/// `POST /account/connections/disconnect` with `connection`: revokes at the provider, then
/// deletes.
pub(crate) async fn disconnect_from_account(
    State(auth): State<McpAuth>,
    request: Request,
) -> Response {
    let (_, params, user) = match account_form(&auth, request).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let connection_id = params.get("connection").unwrap_or_default();
    match auth
        .connections()
        .disconnect(&user.id, connection_id, "account_page")
        .await
    {
        Ok(_) => see_other(
            "/account?done=disconnected",
            std::iter::empty::<HeaderValue>(),
        ),
        Err(_) => unavailable(),
    }
}
