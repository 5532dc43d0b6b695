//! Which path answers what (SPEC §2), and which layers each group of routes gets: CORS for the
//! endpoints browsers call cross-origin, security headers for pages, and never CORS on the
//! authorization, sign-in and consent routes (SECURITY S17).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Method, header};
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::{get, post};
use mcpauth_core::protected_resource::METADATA_PREFIX;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::McpAuth;
use crate::account_api::{get_session, sign_in_email, sign_out, sign_up_email};
use crate::authorize::{authorize_endpoint, consent_api};
use crate::bearer::get_mcp_session;
use crate::discovery::{
    oauth_discovery_metadata, oauth_protected_resource_metadata, other_resource_metadata,
};
use crate::email_flows::api as email_api;
use crate::register::register_client;
use crate::token::token_endpoint;
use crate::web::page_headers;
use crate::{connection_pages as connections, identity_provider, oidc, pages, revocation};

impl McpAuth {
    /// The router with every endpoint and page mcpauth serves. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so rate limits see client addresses.
    pub fn router(&self) -> Router {
        build(self.clone())
    }

    /// The console alone (SECURITY A1), with the sign-in and sign-out pages it sends admins to
    /// and the stylesheet: for an internal listener (the server's `admin_bind`) when
    /// [`McpAuthOptions::console_apart`](crate::McpAuthOptions::console_apart) keeps it out of
    /// [`Self::router`].
    pub fn console_router(&self) -> Router {
        let pages = Router::new()
            .route(
                "/sign-in",
                get(pages::sign_in_page).post(pages::sign_in_submit),
            )
            .route("/sign-out", post(pages::sign_out_submit))
            .layer(from_fn(page_headers));
        Router::new()
            .nest_service(
                &crate::console::path(&self.options().base_path),
                crate::console::service(self.clone()),
            )
            .merge(pages)
            .route("/assets/mcpauth.css", get(pages::stylesheet))
            .fallback(not_found)
            .layer(CatchPanicLayer::new())
            .with_state(self.clone())
    }
}

fn build(auth: McpAuth) -> Router {
    let base = auth.options().base_path.clone();
    let issuer_path = url::Url::parse(&auth.options().issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let main_metadata_path = auth.main_resource().metadata_path.clone();

    let mut discovery = Router::new();
    let mut as_paths = vec![
        "/.well-known/oauth-authorization-server".to_owned(),
        format!("{base}/.well-known/oauth-authorization-server"),
        "/.well-known/openid-configuration".to_owned(),
        format!("{base}/.well-known/openid-configuration"),
    ];
    if !issuer_path.is_empty() {
        as_paths.push(format!(
            "/.well-known/oauth-authorization-server{issuer_path}"
        ));
        as_paths.push(format!("/.well-known/openid-configuration{issuer_path}"));
        as_paths.push(format!("{issuer_path}/.well-known/openid-configuration"));
    }
    for path in dedup(as_paths) {
        discovery = discovery.route(&path, get(oauth_discovery_metadata));
    }
    let prm_paths = vec![
        METADATA_PREFIX.to_owned(),
        main_metadata_path,
        format!("{base}{METADATA_PREFIX}"),
    ];
    for path in dedup(prm_paths) {
        discovery = discovery.route(&path, get(oauth_protected_resource_metadata));
    }
    // Each other resource's metadata at its own path-inserted URL (RFC 9728 §3.1).
    for resource in auth.resources().iter().skip(1) {
        let resource = resource.clone();
        let path = resource.metadata_path.clone();
        discovery = discovery.route(
            &path,
            get(move |State(auth): State<McpAuth>| async move {
                other_resource_metadata(&auth, &resource)
            }),
        );
    }

    let cross_origin = discovery
        .route(&format!("{base}/mcp/register"), post(register_client))
        .route(&format!("{base}/mcp/token"), post(token_endpoint))
        .route(&format!("{base}/mcp/get-session"), get(get_mcp_session))
        .route(&format!("{base}/mcp/revoke"), post(revocation::revoke))
        .route(
            &format!("{base}/mcp/introspect"),
            post(revocation::introspect),
        )
        .route(
            &format!("{base}/mcp/userinfo"),
            get(oidc::userinfo).post(oidc::userinfo),
        )
        .route(&format!("{base}/mcp/jwks"), get(oidc::jwks))
        .layer(cors());

    let pages = Router::new()
        .route(&format!("{base}/mcp/authorize"), get(authorize_endpoint))
        .route(
            "/sign-in",
            get(pages::sign_in_page).post(pages::sign_in_submit),
        )
        .route(
            "/sign-up",
            get(pages::sign_up_page).post(pages::sign_up_submit),
        )
        .route(
            "/consent",
            get(pages::consent_page).post(pages::consent_submit),
        )
        .route("/sign-out", post(pages::sign_out_submit))
        // The account page (SPEC §2): connected apps, sessions, password.
        .route("/account", get(pages::account_page))
        .route("/account/revoke", post(pages::revoke_app))
        .route("/account/password", post(pages::change_password))
        .route(
            "/account/sessions/revoke-others",
            post(pages::revoke_other_sessions),
        )
        .route(
            "/account/sessions/revoke-all",
            post(pages::revoke_all_sessions),
        )
        .route("/", get(pages::home_page))
        // Password reset and email verification (SECURITY S30).
        .route(
            "/forgot-password",
            get(pages::forgot_password_page).post(pages::forgot_password_submit),
        )
        .route(
            "/reset-password",
            get(pages::reset_password_page).post(pages::reset_password_submit),
        )
        .route("/email-verified", get(pages::email_verified_page))
        .route(
            "/verify-email/resend",
            post(pages::resend_verification_submit),
        )
        // Upstream identity providers: the start (Better Auth's path) and the callback.
        .route(
            &format!("{base}/sign-in/social"),
            post(identity_provider::sign_in_start),
        )
        .route(
            &format!("{base}/callback/{{provider}}"),
            get(identity_provider::provider_callback),
        )
        .route("/account/link", post(identity_provider::link_start))
        .route("/account/unlink", post(pages::unlink_provider))
        // Connected accounts (the token vault, SECURITY V2).
        .route(
            "/account/connections/connect",
            post(connections::connect_from_account),
        )
        .route(
            "/account/connections/disconnect",
            post(connections::disconnect_from_account),
        )
        .route(
            &format!("{base}/connections/{{connection}}/connect"),
            get(connections::connect_link_page).post(connections::connect_from_link),
        )
        .route(
            &format!("{base}/connections/{{connection}}/callback"),
            get(connections::connection_callback),
        )
        .layer(from_fn(page_headers));

    let account = Router::new()
        .route(&format!("{base}/sign-up/email"), post(sign_up_email))
        .route(&format!("{base}/sign-in/email"), post(sign_in_email))
        .route(&format!("{base}/sign-out"), post(sign_out))
        .route(&format!("{base}/get-session"), get(get_session))
        .route(&format!("{base}/oauth2/consent"), post(consent_api))
        // Better Auth's email endpoints (the mailed links, too, open here).
        .route(
            &format!("{base}/request-password-reset"),
            post(email_api::request_password_reset),
        )
        .route(
            &format!("{base}/forget-password"),
            post(email_api::request_password_reset),
        )
        .route(
            &format!("{base}/reset-password/{{token}}"),
            get(email_api::reset_password_link),
        )
        .route(
            &format!("{base}/reset-password"),
            post(email_api::reset_password),
        )
        .route(
            &format!("{base}/send-verification-email"),
            post(email_api::send_verification_email),
        )
        .route(
            &format!("{base}/verify-email"),
            get(pages::verify_email_link).post(pages::verify_email_submit),
        );

    let mut router = Router::new()
        .merge(cross_origin)
        .merge(pages)
        .merge(account);
    if !auth.options().console_apart {
        router = router.nest_service(
            &crate::console::path(&base),
            crate::console::service(auth.clone()),
        );
    }
    router
        .route("/assets/mcpauth.css", get(pages::stylesheet))
        .fallback(not_found)
        .layer(CatchPanicLayer::new())
        .with_state(auth)
}

/// CORS for endpoints that browser-based MCP clients (the Inspector) call: any origin, no
/// credentials (these endpoints never read cookies).
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
            // MCP 2026-07-28 (SEP-2243): the method and name mirrored from the body.
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
            // RFC 9449: the proof of possession of a DPoP-bound token.
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(std::time::Duration::from_secs(86_400))
}

fn dedup(paths: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

async fn not_found() -> Response {
    crate::errors::no_such_endpoint()
}
