//! The operator's console (SPEC §10, SECURITY A1): `{base_path}/admin` for people, and the same
//! actions as JSON under `{base_path}/admin/api/…` for automation.
//!
//! - `gate`: who may come in. An admin is a user named in `admins` (with a verified address)
//!   or made one with `mcpauth user admin`; a page needs a browser session signed in within
//!   `admin_reauth_secs`; the API takes that session or an access token with the
//!   `mcpauth:admin` scope. Everyone else gets the server's ordinary 404 for every console
//!   URL — a stale session is sent to sign in again only when it is an admin's.
//! - `actions`: what the console changes (users, clients, grants), each written to the audit
//!   log with the acting admin; pages and API call the same functions.
//! - `read`: what the console shows (overview, users, clients, grants, audit log), as plain
//!   serializable records both the pages and the API use; nothing secret in them (no hashes).
//! - `pages`, `api`: the HTML pages (forms with CSRF tokens, destructive actions by POST with a
//!   typed confirmation) and the JSON endpoints.
//! - `chart`: the overview's inline SVG chart of security events.
//!
//! Every console answer is unframeable and never cached; a 404 or 405 is replaced by the
//! fallback's exact 404, so that nothing tells a console path from an unknown one.

mod actions;
mod api;
mod chart;
mod gate;
mod pages;
mod read;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::{get, post};

use crate::McpAuth;
use crate::errors::no_such_endpoint;
use crate::web::set_page_headers;

/// The console's routes under `{base}/admin`, with their headers.
pub(crate) fn routes(base: &str) -> Router<McpAuth> {
    let admin = format!("{base}/admin");
    let at = |path: &str| format!("{admin}{path}");
    Router::new()
        .route(&admin, get(pages::overview))
        .route(&at("/users"), get(pages::users))
        .route(&at("/users/{id}"), get(pages::user))
        .route(&at("/users/{id}/{action}"), post(pages::user_action))
        .route(&at("/clients"), get(pages::clients))
        .route(&at("/clients/{action}"), post(pages::client_action))
        .route(&at("/grants"), get(pages::grants))
        .route(&at("/grants/revoke"), post(pages::revoke_grants))
        .route(&at("/audit"), get(pages::audit))
        .route(&at("/audit/export"), get(pages::audit_export))
        .route(&at("/api/overview"), get(api::overview))
        .route(&at("/api/users"), get(api::users))
        .route(&at("/api/users/{id}"), get(api::user))
        .route(&at("/api/users/{id}/{action}"), post(api::user_action))
        .route(&at("/api/clients"), get(api::clients))
        .route(&at("/api/clients/{action}"), post(api::client_action))
        .route(&at("/api/grants"), get(api::grants))
        .route(&at("/api/grants/revoke"), post(api::revoke_grants))
        .route(&at("/api/audit"), get(api::audit))
        .layer(from_fn(console_headers))
}

/// Security headers on every console answer; a 404 or 405 (a wrong method on a console path)
/// becomes the fallback's own 404.
async fn console_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if matches!(
        response.status(),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        return no_such_endpoint();
    }
    set_page_headers(response.headers_mut());
    response
}
