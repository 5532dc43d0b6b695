//! Askama views for the built-in HTML pages (sign in, sign up, consent,
//! error, home) and the stylesheet they share.
//!
//! Every page extends `templates/base.html`, loads only `/assets/mcpauth.css`,
//! uses no inline scripts or styles (compatible with a strict CSP) and works
//! without JavaScript. All interpolated values are HTML-escaped by askama.

use askama::Template;

/// One requested scope as shown on the consent page.
pub struct ScopeView {
    /// The raw scope token, e.g. `mcp:tools`.
    pub name: String,
    /// Human-readable description, usually from [`describe_scope`].
    pub description: String,
}

/// The sign-in page (`POST /sign-in` form).
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage<'a> {
    /// CSRF token echoed in a hidden `csrf_token` field.
    pub csrf_token: &'a str,
    /// The signed authorize query (see `pages::sealed_query`), carried in a hidden
    /// `authorize_query` field when present.
    pub authorize_query: Option<&'a str>,
    /// Error message shown in a `role="alert"` box.
    pub error: Option<&'a str>,
    /// Prefilled email address.
    pub email: &'a str,
    /// Name of the client the user is signing in for, if any.
    pub client_name: Option<&'a str>,
    /// Link target for "Create an account" (already includes the query).
    pub sign_up_href: &'a str,
}

/// The sign-up page (`POST /sign-up` form).
#[derive(Template)]
#[template(path = "sign_up.html")]
pub struct SignUpPage<'a> {
    /// CSRF token echoed in a hidden `csrf_token` field.
    pub csrf_token: &'a str,
    /// The signed authorize query (see `pages::sealed_query`), carried in a hidden
    /// `authorize_query` field when present.
    pub authorize_query: Option<&'a str>,
    /// Error message shown in a `role="alert"` box.
    pub error: Option<&'a str>,
    /// Prefilled email address.
    pub email: &'a str,
    /// Prefilled display name.
    pub name: &'a str,
    /// Name of the client the user is signing up for, if any.
    pub client_name: Option<&'a str>,
    /// Link target for "Sign in" (already includes the query).
    pub sign_in_href: &'a str,
}

/// The consent page (`POST /consent` form with Allow / Deny buttons).
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    /// CSRF token echoed in a hidden `csrf_token` field.
    pub csrf_token: &'a str,
    /// Opaque code identifying the pending authorization, in a hidden `consent_code` field.
    pub consent_code: &'a str,
    /// Display name of the requesting client.
    pub client_name: &'a str,
    /// The client's `client_id`, shown small in monospace.
    pub client_id: &'a str,
    /// Client logo URL; a lettered placeholder is shown when `None`.
    pub logo_uri: Option<&'a str>,
    /// Host (or scheme + host) of the redirect URI the user will be sent back to.
    pub redirect_host: &'a str,
    /// Whether the redirect target is on the user's own machine (loopback or custom scheme).
    pub redirect_is_local: bool,
    /// The requested scopes.
    pub scopes: Vec<ScopeView>,
    /// Email of the signed-in user.
    pub user_email: &'a str,
}

impl ConsentPage<'_> {
    /// The client name, or a neutral fallback when the client registered none.
    fn display_name(&self) -> &str {
        let name = self.client_name.trim();
        if name.is_empty() {
            "An unnamed app"
        } else {
            name
        }
    }

    /// First letter of the client name, upper-cased, for the logo placeholder.
    fn logo_letter(&self) -> String {
        self.display_name()
            .chars()
            .next()
            .map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect())
    }
}

/// A generic error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Page title and headline.
    pub title: &'a str,
    /// Explanation shown in a `role="alert"` box.
    pub message: &'a str,
}

/// The signed-in landing page, showing the MCP endpoint and a sign-out form.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    /// CSRF token for the sign-out form.
    pub csrf_token: &'a str,
    /// Display name of the signed-in user (may be empty).
    pub user_name: &'a str,
    /// Email of the signed-in user.
    pub user_email: &'a str,
    /// The MCP endpoint URL to configure in a client.
    pub mcp_url: &'a str,
}

/// Human-readable description of a scope for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".to_owned(),
        "profile" => "See your name and profile picture".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Stay connected while you are away (refresh tokens)".to_owned(),
        "mcp:tools" => "Use this server's MCP tools".to_owned(),
        "mcp:admin" => "Use administrative MCP tools".to_owned(),
        other => format!("Access \u{201c}{other}\u{201d}"),
    }
}

/// The stylesheet served at /assets/mcpauth.css.
pub const STYLESHEET: &str = include_str!("../../assets/mcpauth.css");
