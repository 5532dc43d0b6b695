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

/// The console under `{base_path}/admin`, as a service to nest there: its routes (relative to
/// that path) inside the layer that sets its headers. The layer wraps the whole router, so it
/// sees every answer as sent — axum's 405 with its `Allow` header included.
pub(crate) fn service(auth: McpAuth) -> Router {
    let routes = Router::new()
        .route("/", get(pages::overview))
        .route("/users", get(pages::users))
        .route("/users/{id}", get(pages::user))
        .route("/users/{id}/{action}", post(pages::user_action))
        .route("/clients", get(pages::clients))
        .route("/clients/{action}", post(pages::client_action))
        .route("/grants", get(pages::grants))
        .route("/grants/revoke", post(pages::revoke_grants))
        .route("/audit", get(pages::audit))
        .route("/audit/export", get(pages::audit_export))
        .route("/api/overview", get(api::overview))
        .route("/api/users", get(api::users))
        .route("/api/users/{id}", get(api::user))
        .route("/api/users/{id}/{action}", post(api::user_action))
        .route("/api/clients", get(api::clients))
        .route("/api/clients/{action}", post(api::client_action))
        .route("/api/grants", get(api::grants))
        .route("/api/grants/revoke", post(api::revoke_grants))
        .route("/api/audit", get(api::audit))
        .with_state(auth);
    Router::new()
        .fallback_service(routes)
        .layer(from_fn(console_headers))
}

/// `{base_path}/admin`, where [`service`] is nested.
pub(crate) fn path(base: &str) -> String {
    format!("{base}/admin")
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
