//! What the console shows, as records both the pages and the API use. Nothing secret goes
//! into them: no password, secret or token hash, no session token — a session is its id, its
//! times and where it signed in from.

use mcpauth_core::model::{AuditEvent, AuditFilter, Client, GrantSummary, Session, User};
use mcpauth_core::{Params, StoreError, cimd, redirect_uri};
use serde::Serialize;
use serde_json::Value;

use crate::McpAuth;
use crate::console::chart::{self, Series};
use crate::errors::ConsoleError;

/// The largest page of any list, whatever is asked for.
pub(crate) const MAX_PAGE: u32 = 200;
/// A page's size when none is asked for.
pub(crate) const DEFAULT_PAGE: u32 = 50;
/// The most entries an audit export holds.
pub(crate) const MAX_EXPORT: u32 = 10_000;

/// A user as listed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UserRecord {
    pub id: String,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<&User> for UserRecord {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            email_verified: user.email_verified,
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

/// A browser session, without anything that would let one use it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionRecord {
    pub id: String,
    pub created_at: i64,
    pub auth_time: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<&Session> for SessionRecord {
    fn from(session: &Session) -> Self {
        Self {
            id: session.id.clone(),
            created_at: session.created_at,
            auth_time: session.auth_time,
            expires_at: session.expires_at,
            ip: session.ip_address.clone(),
            user_agent: session.user_agent.clone(),
        }
    }
}

/// A live grant.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GrantRecord {
    pub id: String,
    pub user_id: String,
    pub user_email: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub scope: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

impl From<&GrantSummary> for GrantRecord {
    fn from(grant: &GrantSummary) -> Self {
        Self {
            id: grant.family_id.clone(),
            user_id: grant.user_id.clone(),
            user_email: grant.user_email.clone(),
            client_id: grant.client_id.clone(),
            client_name: grant.client_name.clone(),
            scope: grant.scopes.to_string(),
            created_at: grant.created_at,
            last_used_at: grant.last_used_at,
            expires_at: grant.expires_at,
        }
    }
}

/// An audit log entry.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditRecord {
    pub at: i64,
    pub kind: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// The stored JSON detail, as JSON when it parses.
    pub detail: Value,
}

impl From<AuditEvent> for AuditRecord {
    fn from(event: AuditEvent) -> Self {
        Self {
            detail: serde_json::from_str(&event.detail)
                .unwrap_or_else(|_| Value::from(event.detail.as_str())),
            at: event.at,
            kind: event.kind,
            user_id: event.user_id,
            client_id: event.client_id,
            ip: event.ip,
        }
    }
}

/// How a client came to be registered, which says how far its name can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientKind {
    /// Identified by a metadata document (CIMD): its host is verified.
    Cimd,
    /// Registered itself (RFC 7591): everything about it is self-asserted.
    Dcr,
    /// From `[[trusted_clients]]` in the configuration.
    Configured,
    /// Created by an operator with `mcpauth client create`.
    Cli,
}

impl ClientKind {
    pub(crate) fn of(auth: &McpAuth, client: &Client) -> Self {
        if cimd::is_document_url(&client.client_id) {
            Self::Cimd
        } else if client.registered_dynamically {
            Self::Dcr
        } else if auth
            .options()
            .trusted_clients
            .iter()
            .any(|t| t.client_id == client.client_id)
        {
            Self::Configured
        } else {
            Self::Cli
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Cimd => "CIMD",
            Self::Dcr => "DCR (self-asserted)",
            Self::Configured => "Configured",
            Self::Cli => "CLI",
        }
    }
}

/// A client as listed: no secret hash, no raw metadata.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientRecord {
    pub client_id: String,
    pub name: Option<String>,
    pub kind: ClientKind,
    /// For a CIMD client: the host its metadata document came from.
    pub verified_host: Option<String>,
    /// The hosts (or schemes) of its redirect URIs, each once.
    pub redirect_hosts: Vec<String>,
    pub public: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub users: u64,
}

/// Every client, newest first, with its usage.
pub(crate) async fn clients(auth: &McpAuth) -> Result<Vec<ClientRecord>, StoreError> {
    let (clients, usage) =
        tokio::try_join!(auth.store().list_clients(), auth.store().client_usage())?;
    let mut records: Vec<ClientRecord> = clients
        .iter()
        .map(|client| {
            let used = usage.iter().find(|u| u.client_id == client.client_id);
            let mut redirect_hosts: Vec<String> = Vec::new();
            for uri in &client.redirect_uris {
                let host = redirect_host(uri.as_str());
                if !redirect_hosts.contains(&host) {
                    redirect_hosts.push(host);
                }
            }
            ClientRecord {
                client_id: client.client_id.clone(),
                name: client.name.clone(),
                kind: ClientKind::of(auth, client),
                verified_host: cimd::is_document_url(&client.client_id)
                    .then(|| cimd::document_host(&client.client_id))
                    .flatten(),
                redirect_hosts,
                public: client.is_public(),
                disabled: client.disabled,
                created_at: client.created_at,
                last_used_at: used.map(|u| u.last_used_at),
                users: used.map_or(0, |u| u.users),
            }
        })
        .collect();
    records.reverse();
    Ok(records)
}

/// The host (and port) of a redirect URI, `loopback` for one on this machine, or the scheme of
/// a private-use URI.
fn redirect_host(uri: &str) -> String {
    if redirect_uri::is_loopback(uri) {
        return "loopback".to_owned();
    }
    match url::Url::parse(uri) {
        Ok(url) => match url.host_str() {
            Some(host) if matches!(url.scheme(), "http" | "https") => match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            _ => format!("{}:", url.scheme()),
        },
        Err(_) => "?".to_owned(),
    }
}

/// One user's page: who they are, how they sign in, sessions, grants, their audit trail.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UserDetail {
    pub user: UserRecord,
    pub admin: bool,
    /// `credential` (a password) or an identity provider's id.
    pub sign_in_methods: Vec<String>,
    pub sessions: Vec<SessionRecord>,
    pub grants: Vec<GrantRecord>,
    pub audit: Vec<AuditRecord>,
    /// Connected accounts (the token vault), without their tokens.
    pub connections: Vec<ConnectionRecord>,
}

/// One of a user's connected accounts as the console shows it: which service, what it may do,
/// whether it works; never a token.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConnectionRecord {
    pub connection_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub reconnect_needed: bool,
    pub connected_at: i64,
    pub last_used_at: Option<i64>,
}

/// A user's page, or `None` when there is no such user.
pub(crate) async fn user_detail(
    auth: &McpAuth,
    user_id: &str,
) -> Result<Option<UserDetail>, StoreError> {
    let store = auth.store();
    let Some(user) = store.user_by_id(user_id).await? else {
        return Ok(None);
    };
    let now = auth.now();
    let filter = AuditFilter {
        user_id: Some(user.id.clone()),
        ..AuditFilter::default()
    };
    let (accounts, sessions, grants, audit, admin, connections) = tokio::try_join!(
        store.user_accounts(&user.id),
        store.user_sessions(&user.id, now),
        store.grants(Some(&user.id), None, now),
        store.search_audit(&filter, 0, DEFAULT_PAGE),
        super::gate::is_admin(auth, &user),
        auth.connections().list(&user.id),
    )?;
    Ok(Some(UserDetail {
        user: UserRecord::from(&user),
        admin,
        sign_in_methods: accounts.into_iter().map(|a| a.provider_id).collect(),
        sessions: sessions.iter().map(SessionRecord::from).collect(),
        grants: grants.iter().map(GrantRecord::from).collect(),
        audit: audit.into_iter().map(AuditRecord::from).collect(),
        connections: connections
            .into_iter()
            .map(|c| ConnectionRecord {
                connection_id: c.connection_id,
                name: c.name,
                scopes: c.scopes,
                reconnect_needed: c.reconnect_needed,
                connected_at: c.connected_at,
                last_used_at: c.last_used_at,
            })
            .collect(),
    }))
}

/// A protected resource (the MCP endpoint, a gateway upstream) or an identity provider, as the
/// overview lists them. Health is not probed: `null` means unknown.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Upstream {
    pub name: String,
    pub target: String,
    pub healthy: Option<bool>,
}

/// The overview's numbers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Overview {
    pub users: u64,
    pub disabled_users: u64,
    pub live_grants: u64,
    pub clients: Vec<(ClientKind, u64)>,
    pub disabled_clients: u64,
    /// Configured admins plus stored ones.
    pub admins: u64,
    /// Connected accounts (the token vault), and of them those waiting for their user to
    /// connect again.
    pub connections: u64,
    pub connections_reconnect: u64,
    pub last_24h: Vec<Series>,
    pub last_7d: Vec<Series>,
    pub resources: Vec<Upstream>,
    pub identity_providers: Vec<Upstream>,
    pub cimd_allowed: Vec<String>,
    pub cimd_denied: Vec<String>,
}

pub(crate) async fn overview(auth: &McpAuth) -> Result<Overview, StoreError> {
    let now = auth.now();
    let store = auth.store();
    // Whole hours (and days), so that the buckets are the clock's.
    let hour_start = now - now.rem_euclid(3600) + 3600 - 24 * 3600;
    let day_start = now - now.rem_euclid(86_400) + 86_400 - 7 * 86_400;
    let (counts, clients, hours, days) = tokio::try_join!(
        store.console_counts(now),
        clients(auth),
        store.audit_histogram(hour_start, 3600, 24),
        store.audit_histogram(day_start, 86_400, 7),
    )?;
    let mut by_kind: Vec<(ClientKind, u64)> = [
        ClientKind::Cimd,
        ClientKind::Dcr,
        ClientKind::Configured,
        ClientKind::Cli,
    ]
    .into_iter()
    .map(|kind| (kind, 0))
    .collect();
    for client in &clients {
        if let Some(entry) = by_kind.iter_mut().find(|(kind, _)| *kind == client.kind) {
            entry.1 += 1;
        }
    }
    let options = auth.options();
    let mut last_24h = chart::series(&hours, 24);
    last_24h.push(chart::rate_limited(
        auth.limiter().refusals(hour_start, 3600, 24),
    ));
    let mut last_7d = chart::series(&days, 7);
    last_7d.push(chart::rate_limited(
        auth.limiter().refusals(day_start, 86_400, 7),
    ));
    Ok(Overview {
        users: counts.users,
        disabled_users: counts.disabled_users,
        live_grants: counts.live_grants,
        disabled_clients: clients.iter().filter(|c| c.disabled).count() as u64,
        clients: by_kind,
        admins: counts.stored_admins + options.admins.len() as u64,
        connections: counts.connections,
        connections_reconnect: counts.connections_reconnect,
        last_24h,
        last_7d,
        resources: auth
            .resources()
            .iter()
            .map(|r| Upstream {
                name: r.name.clone(),
                target: r.uri.clone(),
                healthy: None,
            })
            .collect(),
        identity_providers: options
            .identity_providers
            .iter()
            .map(|p| Upstream {
                name: p.name.clone(),
                target: p.id.clone(),
                healthy: None,
            })
            .collect(),
        cimd_allowed: options.cimd.allowed.clone(),
        cimd_denied: options.cimd.denied.clone(),
    })
}

/// `offset` and `limit` of a query, the limit bounded by [`MAX_PAGE`].
pub(crate) fn page_of(params: &Params) -> (u64, u32) {
    let offset = params
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    (offset, limit)
}

/// A query parameter, trimmed; `None` when absent or empty.
pub(crate) fn text<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// The audit filter of a query: `kind`, `user`, `client`, `ip`, `from`, `to` (times as
/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` in UTC, or seconds since the Unix epoch).
pub(crate) fn audit_filter(params: &Params) -> Result<AuditFilter, ConsoleError> {
    let time = |name: &str| -> Result<Option<i64>, ConsoleError> {
        text(params, name)
            .map(|value| {
                parse_time(value).ok_or_else(|| {
                    ConsoleError::BadRequest(format!(
                        "{name} must be a date (YYYY-MM-DD), a UTC time (YYYY-MM-DDTHH:MM) or Unix seconds"
                    ))
                })
            })
            .transpose()
    };
    Ok(AuditFilter {
        kind: text(params, "kind").map(str::to_owned),
        user_id: text(params, "user").map(str::to_owned),
        client_id: text(params, "client").map(str::to_owned),
        ip: text(params, "ip").map(str::to_owned),
        since: time("from")?,
        until: time("to")?,
    })
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or Unix seconds.
pub(crate) fn parse_time(value: &str) -> Option<i64> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(seconds);
    }
    let (date, time) = value.split_once(['T', ' ']).unwrap_or((value, "00:00"));
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let mut time_parts = time
        .trim_end_matches('Z')
        .splitn(3, ':')
        .map(|p| p.parse::<i64>().ok());
    let hour = time_parts.next()??;
    let minute = time_parts.next()??;
    let second = time_parts.next().unwrap_or(Some(0))?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the inverse of core's
/// `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-26 06:40 UTC`.
pub(crate) fn utc(unix: i64) -> String {
    let t = mcpauth_core::UtcDateTime::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_and_round_trip() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2026-12-07T08:30"), Some(1_796_632_200));
        assert_eq!(utc(1_796_632_200), "2026-12-07 08:30 UTC");
        assert_eq!(parse_time("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        for bad in [
            "",
            "2026-13-01",
            "2026-12",
            "yesterday",
            "2026-12-07T25:00",
            "2026-12-07T08",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_are_bounded() {
        let params = Params::from_query(Some("offset=5&limit=100000"), &[]).unwrap();
        assert_eq!(page_of(&params), (5, MAX_PAGE));
        let params = Params::from_query(Some("limit=0"), &[]).unwrap();
        assert_eq!(page_of(&params), (0, 1));
        assert_eq!(page_of(&Params::default()), (0, DEFAULT_PAGE));
    }
}
