//! The console's HTML pages (SECURITY A1): server-rendered, no script, one stylesheet; every
//! action a CSRF-protected same-origin form post answered with 303 and a notice signed by this
//! server (so a link cannot make the console say something); deletions need typed confirmation.

use askama::Template;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use mcpauth_core::Params;
use mcpauth_core::model::{AuditEvent, GrantSummary};

use super::actions::{self, ClientAction, UserAction};
use super::chart;
use super::gate::{Admin, console_home, page_admin};
use super::read::{self, AuditRecord, MAX_EXPORT, utc};
use crate::McpAuth;
use crate::errors::ConsoleError;
use crate::params::{params_from_body, read_body};

/// What every console page carries: where the console is, the tab, the admin, the CSRF token
/// and the notice of the last action.
pub(crate) struct Frame {
    pub home: String,
    pub tab: &'static str,
    pub admin_email: String,
    pub csrf_token: String,
    pub notice: Option<String>,
}

const NOTICE: &str = "console-notice";

/// The frame of a page, and the CSRF cookie to set when the browser has none.
fn frame(
    auth: &McpAuth,
    parts: &Parts,
    admin: &Admin,
    tab: &'static str,
    params: &Params,
) -> (Frame, Option<HeaderValue>) {
    let (csrf_token, cookie) = auth.site().csrf_token(&parts.headers);
    let notice = params
        .get("notice")
        .and_then(|signed| auth.site().verify_value(NOTICE, signed));
    (
        Frame {
            home: console_home(auth),
            tab,
            admin_email: admin.user.email.clone(),
            csrf_token,
            notice,
        },
        cookie,
    )
}

fn render(page: &impl Template, cookie: Option<HeaderValue>) -> Response {
    let mut response = match page.render() {
        Ok(html) => (StatusCode::OK, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// 303 to `location` with `notice` signed into the query.
fn done(auth: &McpAuth, location: &str, notice: &str) -> Response {
    let signed = auth.site().sign_value(NOTICE, notice);
    let separator = if location.contains('?') { '&' } else { '?' };
    let target = format!("{location}{separator}notice={}", encode(&signed));
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The path and query of a page request, to come back to after signing in again.
fn here(parts: &Parts) -> String {
    // The console is nested: its handlers see the path below `{base}/admin`.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

async fn page_gate(
    auth: &McpAuth,
    parts: &Parts,
    raw: Option<&str>,
) -> Result<(Admin, Params), ConsoleError> {
    let admin = page_admin(auth, parts, &here(parts)).await?;
    let params =
        Params::from_query(raw, &[]).map_err(|e| ConsoleError::BadRequest(e.description))?;
    Ok((admin, params))
}

/// A form post's admin and fields, after the gate and the CSRF and same-origin checks (in that
/// order: someone who is not an admin learns nothing, not even that the form was refused).
async fn form_gate(auth: &McpAuth, request: Request) -> Result<(Admin, Params), ConsoleError> {
    let (parts, body) = request.into_parts();
    let admin = page_admin(auth, &parts, &console_home(auth)).await?;
    let bytes = read_body(body)
        .await
        .map_err(|_| ConsoleError::BadRequest("The form is too large.".to_owned()))?;
    let params = params_from_body(&parts.headers, &bytes, &["grant"])
        .map_err(|e| ConsoleError::BadRequest(e.description))?;
    if !auth
        .site()
        .form_post_allowed(&parts.headers, params.get("csrf_token"))
    {
        return Err(ConsoleError::Forbidden);
    }
    Ok((admin, params))
}

// ----- Overview ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    o: read::Overview,
    chart_24h: String,
    chart_7d: String,
    /// Series name, 24 h total, 7 day total.
    legend: Vec<(&'static str, u64, u64)>,
}

/// `GET {base}/admin`.
pub(crate) async fn overview(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let o = read::overview(&auth).await?;
        Ok::<_, ConsoleError>((admin, params, o))
    }
    .await;
    let (admin, params, o) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (frame, cookie) = frame(&auth, &parts, &admin, "overview", &params);
    let legend = o
        .last_24h
        .iter()
        .zip(&o.last_7d)
        .map(|(day, week)| (day.name, day.total, week.total))
        .collect();
    let page = OverviewPage {
        frame,
        chart_24h: chart::svg(&o.last_24h, "Security events per hour, last 24 hours"),
        chart_7d: chart::svg(&o.last_7d, "Security events per day, last 7 days"),
        legend,
        o,
    };
    render(&page, cookie)
}

// ----- Users ---------------------------------------------------------------------------------

struct UserRow {
    href: String,
    email: String,
    name: String,
    email_verified: bool,
    disabled: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    frame: Frame,
    q: String,
    total: u64,
    users: Vec<UserRow>,
    prev_href: Option<String>,
    next_href: Option<String>,
}

/// Links to the previous and next pages of a list at `path` filtered by `query` (already
/// encoded, without offset).
fn pager(
    path: &str,
    query: &str,
    offset: u64,
    limit: u32,
    has_more: bool,
) -> (Option<String>, Option<String>) {
    let link = |offset: u64| {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{path}?{query}{sep}offset={offset}&limit={limit}")
    };
    let prev = (offset > 0).then(|| link(offset.saturating_sub(u64::from(limit))));
    let next = has_more.then(|| link(offset + u64::from(limit)));
    (prev, next)
}

/// `GET {base}/admin/users?q=`.
pub(crate) async fn users(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let (offset, limit) = read::page_of(&params);
        let q = read::text(&params, "q").unwrap_or_default().to_owned();
        let found = auth.store().search_users(&q, offset, limit).await?;
        Ok::<_, ConsoleError>((admin, params, q, offset, limit, found))
    }
    .await;
    let (admin, params, q, offset, limit, (users, total)) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (frame, cookie) = frame(&auth, &parts, &admin, "users", &params);
    let (prev_href, next_href) = pager(
        &format!("{}/users", frame.home),
        &format!("q={}", encode(&q)),
        offset,
        limit,
        offset + (users.len() as u64) < total,
    );
    let page = UsersPage {
        users: users
            .iter()
            .map(|u| UserRow {
                href: encode(&u.id),
                email: u.email.clone(),
                name: u.name.clone(),
                email_verified: u.email_verified,
                disabled: u.disabled,
                created: utc(u.created_at),
            })
            .collect(),
        frame,
        q,
        total,
        prev_href,
        next_href,
    };
    render(&page, cookie)
}

struct GrantRow {
    key: String,
    user_href: String,
    user_email: String,
    client: String,
    client_id: String,
    scope: String,
    created: String,
    last_used: String,
}

fn grant_rows(grants: &[GrantSummary]) -> Vec<GrantRow> {
    grants
        .iter()
        .map(|g| GrantRow {
            key: format!("{} {}", g.user_id, g.client_id),
            user_href: encode(&g.user_id),
            user_email: g.user_email.clone(),
            client: g
                .client_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "(no name)".to_owned()),
            client_id: g.client_id.clone(),
            scope: g.scopes.to_string(),
            created: utc(g.created_at),
            last_used: utc(g.last_used_at),
        })
        .collect()
}

struct AuditRow {
    when: String,
    kind: String,
    user: String,
    client: String,
    ip: String,
    detail: String,
}

fn audit_rows(events: Vec<AuditEvent>) -> Vec<AuditRow> {
    events
        .into_iter()
        .map(|e| AuditRow {
            when: utc(e.at),
            kind: e.kind,
            user: e.user_id.unwrap_or_default(),
            client: e.client_id.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            detail: e.detail,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    frame: Frame,
    /// The user's action URLs' prefix.
    base: String,
    u: read::UserRecord,
    created: String,
    admin: bool,
    can_reset: bool,
    methods: Vec<String>,
    /// Signed in, expires, address, browser.
    sessions: Vec<(String, String, String, String)>,
    grants: Vec<GrantRow>,
    events: Vec<AuditRow>,
    /// Connected services: name, scopes, connected, last used, whether a reconnect is needed.
    connections: Vec<(String, String, String, String, bool)>,
}

/// `GET {base}/admin/users/{id}`.
pub(crate) async fn user(
    State(auth): State<McpAuth>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let detail = read::user_detail(&auth, &id)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        let grants = auth.store().grants(Some(&id), None, auth.now()).await?;
        let filter = mcpauth_core::model::AuditFilter {
            user_id: Some(id.clone()),
            ..Default::default()
        };
        let events = auth.store().search_audit(&filter, 0, 20).await?;
        Ok::<_, ConsoleError>((admin, params, detail, grants, events))
    }
    .await;
    let (admin, params, detail, grants, events) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (frame, cookie) = frame(&auth, &parts, &admin, "users", &params);
    let page = UserPage {
        base: format!("{}/users/{}", frame.home, encode(&detail.user.id)),
        created: utc(detail.user.created_at),
        admin: detail.admin,
        can_reset: crate::email_flows::resets_passwords(&auth),
        methods: detail
            .sign_in_methods
            .iter()
            .map(|m| {
                if m == "credential" {
                    "password".to_owned()
                } else {
                    m.clone()
                }
            })
            .collect(),
        sessions: detail
            .sessions
            .iter()
            .map(|s| {
                (
                    utc(s.auth_time),
                    utc(s.expires_at),
                    s.ip.clone().unwrap_or_default(),
                    s.user_agent.clone().unwrap_or_default(),
                )
            })
            .collect(),
        grants: grant_rows(&grants),
        events: audit_rows(events),
        connections: detail
            .connections
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.scopes.join(" "),
                    utc(c.connected_at),
                    c.last_used_at
                        .map(utc)
                        .unwrap_or_else(|| "never".to_owned()),
                    c.reconnect_needed,
                )
            })
            .collect(),
        u: detail.user,
        frame,
    };
    render(&page, cookie)
}

/// `POST {base}/admin/users/{id}/{action}`.
pub(crate) async fn user_action(
    State(auth): State<McpAuth>,
    Path((id, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let result = async {
        let (admin, params) = form_gate(&auth, request).await?;
        let action = UserAction::parse(&action).ok_or(ConsoleError::NotFound)?;
        let message =
            actions::user_action(&auth, &admin, &id, action, params.get("confirm")).await?;
        let home = console_home(&auth);
        let back = if action == UserAction::Delete {
            format!("{home}/users")
        } else {
            format!("{home}/users/{}", encode(&id))
        };
        Ok::<_, ConsoleError>(done(&auth, &back, &message))
    }
    .await;
    result.unwrap_or_else(ConsoleError::page)
}

// ----- Clients -------------------------------------------------------------------------------

struct ClientRow {
    client_id: String,
    name: String,
    kind: &'static str,
    verified_host: Option<String>,
    redirect_hosts: String,
    last_used: String,
    users: u64,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    frame: Frame,
    clients: Vec<ClientRow>,
    unused: usize,
    cimd_enabled: bool,
    cimd_allowed: Vec<String>,
    cimd_denied: Vec<String>,
}

/// `GET {base}/admin/clients`.
pub(crate) async fn clients(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let clients = read::clients(&auth).await?;
        Ok::<_, ConsoleError>((admin, params, clients))
    }
    .await;
    let (admin, params, clients) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (frame, cookie) = frame(&auth, &parts, &admin, "clients", &params);
    let cimd = &auth.options().cimd;
    let page = ClientsPage {
        frame,
        unused: clients
            .iter()
            .filter(|c| c.kind == read::ClientKind::Dcr && c.last_used_at.is_none())
            .count(),
        clients: clients
            .into_iter()
            .map(|c| ClientRow {
                name: c
                    .name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| "(no name)".to_owned()),
                kind: c.kind.label(),
                verified_host: c.verified_host,
                redirect_hosts: c.redirect_hosts.join(", "),
                last_used: c.last_used_at.map_or_else(|| "never".to_owned(), utc),
                users: c.users,
                disabled: c.disabled,
                client_id: c.client_id,
            })
            .collect(),
        cimd_enabled: cimd.enabled,
        cimd_allowed: cimd.allowed.clone(),
        cimd_denied: cimd.denied.clone(),
    };
    render(&page, cookie)
}

/// `POST {base}/admin/clients/{action}`.
pub(crate) async fn client_action(
    State(auth): State<McpAuth>,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (admin, params) = form_gate(&auth, request).await?;
        let action = ClientAction::parse(&action).ok_or(ConsoleError::NotFound)?;
        let message = actions::client_action(
            &auth,
            &admin,
            params.get("client_id"),
            action,
            params.get("confirm"),
        )
        .await?;
        Ok::<_, ConsoleError>(done(
            &auth,
            &format!("{}/clients", console_home(&auth)),
            &message,
        ))
    }
    .await;
    result.unwrap_or_else(ConsoleError::page)
}

// ----- Grants --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/grants.html")]
struct GrantsPage {
    frame: Frame,
    user: String,
    client: String,
    total: usize,
    grants: Vec<GrantRow>,
    prev_href: Option<String>,
    next_href: Option<String>,
}

/// `GET {base}/admin/grants?user=&client=`; `user` may be an email or an id.
pub(crate) async fn grants(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let user = read::text(&params, "user").unwrap_or_default().to_owned();
        let client = read::text(&params, "client").unwrap_or_default().to_owned();
        let user_id = if user.contains('@') {
            auth.store()
                .user_by_email(&user.to_lowercase())
                .await?
                .map_or_else(|| "-".to_owned(), |(u, _)| u.id)
        } else {
            user.clone()
        };
        let found = auth
            .store()
            .grants(
                Some(user_id.as_str()).filter(|u| !u.is_empty()),
                Some(client.as_str()).filter(|c| !c.is_empty()),
                auth.now(),
            )
            .await?;
        Ok::<_, ConsoleError>((admin, params, user, client, found))
    }
    .await;
    let (admin, params, user, client, found) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (offset, limit) = read::page_of(&params);
    let page_of: Vec<GrantSummary> = found
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .cloned()
        .collect();
    let (frame, cookie) = frame(&auth, &parts, &admin, "grants", &params);
    let (prev_href, next_href) = pager(
        &format!("{}/grants", frame.home),
        &format!("user={}&client={}", encode(&user), encode(&client)),
        offset,
        limit,
        (offset as usize).saturating_add(page_of.len()) < found.len(),
    );
    let page = GrantsPage {
        frame,
        user,
        client,
        total: found.len(),
        grants: grant_rows(&page_of),
        prev_href,
        next_href,
    };
    render(&page, cookie)
}

/// `POST {base}/admin/grants/revoke`: the checked `grant`s, or the one whose button was
/// pressed (`one`), each `"<user_id> <client_id>"`.
pub(crate) async fn revoke_grants(State(auth): State<McpAuth>, request: Request) -> Response {
    let result = async {
        let (admin, params) = form_gate(&auth, request).await?;
        let chosen: Vec<&str> = match params.get("one") {
            Some(one) => vec![one],
            None => params.all("grant"),
        };
        let grants: Vec<(String, String)> = chosen
            .into_iter()
            .filter_map(|key| key.split_once(' '))
            .map(|(user, client)| (user.to_owned(), client.to_owned()))
            .collect();
        let revoked = actions::revoke_grants(&auth, &admin, &grants).await?;
        Ok::<_, ConsoleError>(done(
            &auth,
            &format!("{}/grants", console_home(&auth)),
            &format!("Revoked {revoked} grant(s): those tokens no longer work."),
        ))
    }
    .await;
    result.unwrap_or_else(ConsoleError::page)
}

// ----- Audit log -----------------------------------------------------------------------------

/// The filter as typed, to show it again.
struct FilterView {
    kind: String,
    user: String,
    client: String,
    ip: String,
    from: String,
    to: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    f: FilterView,
    kinds: &'static [&'static str],
    events: Vec<AuditRow>,
    csv_href: String,
    json_href: String,
    max_export: u32,
    prev_href: Option<String>,
    next_href: Option<String>,
}

/// Kinds offered as suggestions in the filter.
const KINDS: &[&str] = &[
    "admin",
    "sign_in",
    "sign_in.success",
    "sign_in.failure",
    "token",
    "token.issue",
    "token.refresh",
    "token.revoke",
    "refresh.reuse_detected",
    "code.replay_detected",
    "consent",
    "account",
];

/// `GET {base}/admin/audit?kind=&user=&client=&ip=&from=&to=&offset=&limit=`.
pub(crate) async fn audit(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let filter = read::audit_filter(&params)?;
        let (offset, limit) = read::page_of(&params);
        // One more than shown tells whether there is a next page.
        let mut events = auth
            .store()
            .search_audit(&filter, offset, limit + 1)
            .await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        Ok::<_, ConsoleError>((admin, params, events, more, offset, limit))
    }
    .await;
    let (admin, params, events, more, offset, limit) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (frame, cookie) = frame(&auth, &parts, &admin, "audit", &params);
    let value = |name: &str| read::text(&params, name).unwrap_or_default().to_owned();
    let f = FilterView {
        kind: value("kind"),
        user: value("user"),
        client: value("client"),
        ip: value("ip"),
        from: value("from"),
        to: value("to"),
    };
    let query = format!(
        "kind={}&user={}&client={}&ip={}&from={}&to={}",
        encode(&f.kind),
        encode(&f.user),
        encode(&f.client),
        encode(&f.ip),
        encode(&f.from),
        encode(&f.to)
    );
    let path = format!("{}/audit", frame.home);
    let (prev_href, next_href) = pager(&path, &query, offset, limit, more);
    let page = AuditPage {
        csv_href: format!("{path}/export?format=csv&{query}"),
        json_href: format!("{path}/export?format=json&{query}"),
        max_export: MAX_EXPORT,
        kinds: KINDS,
        events: audit_rows(events),
        f,
        frame,
        prev_href,
        next_href,
    };
    render(&page, cookie)
}

/// `GET {base}/admin/audit/export?format=csv|json&…`: the filtered entries, newest first, at
/// most [`MAX_EXPORT`], as a download.
pub(crate) async fn audit_export(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (admin, params) = page_gate(&auth, &parts, raw.as_deref()).await?;
        let filter = read::audit_filter(&params)?;
        let events = auth.store().search_audit(&filter, 0, MAX_EXPORT).await?;
        let json = match params.get("format") {
            Some("json") => true,
            Some("csv") | None => false,
            Some(_) => {
                return Err(ConsoleError::BadRequest(
                    "format must be csv or json".to_owned(),
                ));
            }
        };
        auth.audit(
            "admin.audit.export",
            None,
            None,
            Some(&admin.ip),
            serde_json::json!({
                "admin": admin.user.email, "admin_id": admin.user.id, "via": admin.via.as_str(),
                "entries": events.len(), "format": if json { "json" } else { "csv" },
            }),
        )
        .await;
        Ok::<_, ConsoleError>((json, events))
    }
    .await;
    let (json, events) = match result {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let (body, content_type, name) = if json {
        let records: Vec<AuditRecord> = events.into_iter().map(AuditRecord::from).collect();
        (
            serde_json::to_string_pretty(&records).unwrap_or_default(),
            "application/json",
            "mcpauth-audit.json",
        )
    } else {
        (csv(&events), "text/csv; charset=utf-8", "mcpauth-audit.csv")
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// RFC 4180 CSV with a header row. A field that a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`.
fn csv(events: &[AuditEvent]) -> String {
    fn field(text: &str) -> String {
        let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text.to_owned()
        };
        if text.contains([',', '"', '\n', '\r']) || text.starts_with('\'') {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    }
    let mut out = String::from("at,time_utc,kind,user_id,client_id,ip,detail\r\n");
    for e in events {
        let row = [
            e.at.to_string(),
            utc(e.at),
            e.kind.clone(),
            e.user_id.clone().unwrap_or_default(),
            e.client_id.clone().unwrap_or_default(),
            e.ip.clone().unwrap_or_default(),
            e.detail.clone(),
        ];
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let event = AuditEvent {
            at: 0,
            kind: "admin.user.delete".to_owned(),
            user_id: Some("=HYPERLINK(\"x\")".to_owned()),
            client_id: None,
            ip: Some("192.0.2.1".to_owned()),
            detail: r#"{"email":"a@b","n":1}"#.to_owned(),
        };
        let text = csv(&[event]);
        let line = text.lines().nth(1).unwrap_or_default();
        assert_eq!(
            line,
            r#"0,1970-01-01 00:00 UTC,admin.user.delete,"'=HYPERLINK(""x"")",,192.0.2.1,"{""email"":""a@b"",""n"":1}""#
        );
    }
}
