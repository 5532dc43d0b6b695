//! The console as JSON, under `{base_path}/admin/api/…` (SECURITY A1): the same reads and
//! actions as the pages, for automation. Callers authenticate with an access token carrying the
//! `mcpauth:admin` scope (`Authorization: Bearer …`) or an admin's recent browser session;
//! anyone else gets the server's ordinary 404. Actions are POSTs with a JSON body.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use mcpauth_core::Params;
use serde::Deserialize;
use serde_json::json;

use super::actions::{self, ClientAction, UserAction};
use super::gate::{Admin, api_admin};
use super::read::{self, AuditRecord, GrantRecord, UserRecord};
use crate::McpAuth;
use crate::errors::{ConsoleError, NoStore};
use crate::params::read_body;

fn ok(value: serde_json::Value) -> Response {
    NoStore(axum::Json(value)).into_response()
}

async fn admin_of(auth: &McpAuth, parts: &Parts) -> Result<Admin, ConsoleError> {
    api_admin(auth, parts).await
}

fn query(raw: Option<&str>) -> Result<Params, ConsoleError> {
    Params::from_query(raw, &[]).map_err(|e| ConsoleError::BadRequest(e.description))
}

/// `GET …/api/overview`.
pub(crate) async fn overview(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        Ok::<_, ConsoleError>(read::overview(&auth).await?)
    }
    .await;
    match result {
        Ok(overview) => ok(json!(overview)),
        Err(error) => error.api(),
    }
}

/// `GET …/api/users?q=&offset=&limit=`.
pub(crate) async fn users(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        let params = query(raw.as_deref())?;
        let (offset, limit) = read::page_of(&params);
        let search = read::text(&params, "q").unwrap_or_default();
        let (users, total) = auth.store().search_users(search, offset, limit).await?;
        Ok::<_, ConsoleError>(json!({
            "users": users.iter().map(UserRecord::from).collect::<Vec<_>>(),
            "total": total,
            "offset": offset,
            "limit": limit,
        }))
    }
    .await;
    result.map_or_else(ConsoleError::api, ok)
}

/// `GET …/api/users/{id}`.
pub(crate) async fn user(
    State(auth): State<McpAuth>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        read::user_detail(&auth, &id)
            .await?
            .ok_or(ConsoleError::NotFound)
    }
    .await;
    result.map_or_else(ConsoleError::api, |detail| ok(json!(detail)))
}

/// A JSON action body: `confirm` (a deletion's typed confirmation), `client_id`, `grants`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ActionBody {
    confirm: Option<String>,
    client_id: Option<String>,
    grants: Vec<GrantRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRef {
    user_id: String,
    client_id: String,
}

async fn action_body(body: axum::body::Body) -> Result<ActionBody, ConsoleError> {
    let bytes = read_body(body)
        .await
        .map_err(|_| ConsoleError::BadRequest("the body is too large".to_owned()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ConsoleError::BadRequest(format!("the JSON body could not be read: {e}")))
}

/// `POST …/api/users/{id}/{action}`: `disable`, `enable`, `end-sessions`, `send-reset-link`,
/// `delete` (body `{"confirm": "<the user's email>"}`).
pub(crate) async fn user_action(
    State(auth): State<McpAuth>,
    Path((id, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let admin = admin_of(&auth, &parts).await?;
        let action = UserAction::parse(&action).ok_or(ConsoleError::NotFound)?;
        let body = action_body(body).await?;
        actions::user_action(&auth, &admin, &id, action, body.confirm.as_deref()).await
    }
    .await;
    result.map_or_else(ConsoleError::api, |done| {
        ok(json!({ "ok": true, "message": done }))
    })
}

/// `GET …/api/clients`.
pub(crate) async fn clients(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        let clients = read::clients(&auth).await?;
        let cimd = &auth.options().cimd;
        Ok::<_, ConsoleError>(json!({
            "clients": clients,
            "cimd": { "enabled": cimd.enabled, "allowed": cimd.allowed, "denied": cimd.denied },
        }))
    }
    .await;
    result.map_or_else(ConsoleError::api, ok)
}

/// `POST …/api/clients/{action}` with `{"client_id": …}`: `disable`, `enable`, `delete`
/// (with `"confirm": "<the client id>"`), `purge-unused` (no client).
pub(crate) async fn client_action(
    State(auth): State<McpAuth>,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let admin = admin_of(&auth, &parts).await?;
        let action = ClientAction::parse(&action).ok_or(ConsoleError::NotFound)?;
        let body = action_body(body).await?;
        actions::client_action(
            &auth,
            &admin,
            body.client_id.as_deref(),
            action,
            body.confirm.as_deref(),
        )
        .await
    }
    .await;
    result.map_or_else(ConsoleError::api, |done| {
        ok(json!({ "ok": true, "message": done }))
    })
}

/// `GET …/api/grants?user=&client=&offset=&limit=`.
pub(crate) async fn grants(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        let params = query(raw.as_deref())?;
        let (offset, limit) = read::page_of(&params);
        let found = auth
            .store()
            .grants(
                read::text(&params, "user"),
                read::text(&params, "client"),
                auth.now(),
            )
            .await?;
        let total = found.len();
        let page: Vec<GrantRecord> = found
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .map(GrantRecord::from)
            .collect();
        Ok::<_, ConsoleError>(json!({
            "grants": page, "total": total, "offset": offset, "limit": limit,
        }))
    }
    .await;
    result.map_or_else(ConsoleError::api, ok)
}

/// `POST …/api/grants/revoke` with `{"grants": [{"user_id", "client_id"}, …]}`.
pub(crate) async fn revoke_grants(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let admin = admin_of(&auth, &parts).await?;
        let body = action_body(body).await?;
        let grants: Vec<(String, String)> = body
            .grants
            .into_iter()
            .map(|g| (g.user_id, g.client_id))
            .collect();
        actions::revoke_grants(&auth, &admin, &grants).await
    }
    .await;
    result.map_or_else(ConsoleError::api, |revoked| {
        ok(json!({ "ok": true, "revoked": revoked }))
    })
}

/// `GET …/api/audit?kind=&user=&client=&ip=&from=&to=&offset=&limit=`, newest first.
pub(crate) async fn audit(
    State(auth): State<McpAuth>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        admin_of(&auth, &parts).await?;
        let params = query(raw.as_deref())?;
        let filter = read::audit_filter(&params)?;
        let (offset, limit) = read::page_of(&params);
        let events = auth.store().search_audit(&filter, offset, limit).await?;
        Ok::<_, ConsoleError>(json!({
            "events": events.into_iter().map(AuditRecord::from).collect::<Vec<_>>(),
            "offset": offset,
            "limit": limit,
        }))
    }
    .await;
    result.map_or_else(ConsoleError::api, ok)
}
