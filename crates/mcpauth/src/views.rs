//! Askama views for the built-in HTML pages (sign in, sign up, consent,
//! error, home, account) and the stylesheet they share.
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
    /// Where to go after signing in (a same-origin path, already checked), carried in a
    /// hidden `return_to` field.
    pub return_to: Option<&'a str>,
    /// The identity providers: one "Continue with …" button each.
    pub providers: Vec<ProviderView>,
    /// Where the provider buttons post (`{base}/sign-in/social`).
    pub social_action: &'a str,
    /// Whether the password form (and the sign-up link) is shown.
    pub password_login: bool,
}

/// An identity provider as a button or a row on the account page.
pub struct ProviderView {
    /// The provider's id, posted back as `provider`.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// One way to sign in, on the account page.
pub struct SignInMethodView {
    /// `credential` or the provider's id (posted back by Unlink).
    pub id: String,
    /// "Password" or the provider's name.
    pub name: String,
    /// When it was added (UTC).
    pub added_at: String,
    /// Whether it can be removed here: an provider, and not the last way in.
    pub can_unlink: bool,
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
    /// Whether sign-up mails a link to verify the address (said under the email field).
    pub verification_mail: bool,
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
    /// Whether every redirect URI the client has is on loopback: a local app, not a website
    /// (SECURITY M7).
    pub every_redirect_is_local: bool,
    /// The host of a metadata-document client's `client_id`: where its details were fetched
    /// from, so the one thing about it that is verified.
    pub verified_host: Option<&'a str>,
    /// Whether the name was chosen by the client itself (dynamic registration), unverified.
    pub name_is_self_asserted: bool,
    /// Whether the operator registered the client (configuration or the admin CLI).
    pub registered_by_operator: bool,
    /// The name of the MCP server (protected resource) the tokens will be for.
    pub resource_name: &'a str,
    /// Its canonical URI: the one place the tokens will work.
    pub resource_uri: &'a str,
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
        crate::options::ADMIN_SCOPE => {
            "Administer this server: its users, apps, grants and audit log".to_owned()
        }
        other => format!("Access \u{201c}{other}\u{201d}"),
    }
}

/// The stylesheet served at /assets/mcpauth.css.
pub const STYLESHEET: &str = include_str!("../assets/mcpauth.css");

/// One connected app on the account page: the live grants of one client, merged.
pub struct AppView {
    /// The client's `client_id`, posted back by the Revoke form.
    pub client_id: String,
    /// The client's registered name, or its `client_id` when it has none.
    pub name: String,
    /// Whether `name` is a registered name (the `client_id` is then shown below it).
    pub named: bool,
    /// For a client identified by a metadata document: the host its details come from.
    pub verified_host: Option<String>,
    /// The client's logo, only when it is an https URL; a letter placeholder otherwise.
    pub logo_uri: Option<String>,
    /// First letter of `name`, upper-cased, for the placeholder.
    pub letter: String,
    /// The scopes granted, in words.
    pub scopes: Vec<ScopeView>,
    /// When the app was first authorized (UTC, `2026-11-26 06:40 UTC`).
    pub authorized_at: String,
    /// The same instant as a `<time datetime>` value (`2026-11-26T06:40Z`).
    pub authorized_iso: String,
    /// When the app last got a token (UTC).
    pub last_used_at: String,
    /// The same instant as a `<time datetime>` value.
    pub last_used_iso: String,
}

/// The account page: who is signed in, connected apps, sessions, password change, sign-out.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    /// CSRF token echoed in every form's hidden `csrf_token` field.
    pub csrf_token: &'a str,
    /// Display name of the signed-in user (may be empty).
    pub user_name: &'a str,
    /// Email of the signed-in user.
    pub user_email: &'a str,
    /// Whether that address is verified (shown next to it).
    pub email_verified: bool,
    /// Whether the page offers to mail a verification link (unverified, and mail is sent).
    pub can_send_verification: bool,
    /// What the last action did, shown in a `role="status"` box at the top.
    pub notice: Option<&'a str>,
    /// That the password was changed, shown in the password section.
    pub password_notice: Option<&'a str>,
    /// Why the password was not changed, shown in the password section.
    pub password_error: Option<&'a str>,
    /// The apps holding live grants, newest first.
    pub apps: Vec<AppView>,
    /// How many unexpired sessions the user has besides this one.
    pub other_sessions: usize,
    /// Whether a password change also disconnects every app.
    pub password_change_revokes_apps: bool,
    /// The shortest password accepted, for the form's hint and `minlength`.
    pub min_password: usize,
    /// The ways the user signs in (password, linked providers).
    pub sign_in_methods: Vec<SignInMethodView>,
    /// Configured providers the user has not linked yet.
    pub linkable_providers: Vec<ProviderView>,
    /// Why the last sign-in-method action was refused, shown in that section.
    pub methods_error: Option<&'a str>,
    /// Whether the user has a password (users from an identity provider may have none: the
    /// password section is then not shown).
    pub has_password: bool,
    /// Every configured connection, connected or not ("Connected services").
    pub services: Vec<ServiceView>,
}

/// A configured connection on the account page: connected (with its scopes, dates and
/// status) or not.
pub struct ServiceView {
    /// The connection's id (in the forms).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether the user has connected it.
    pub connected: bool,
    /// Whether the provider refused a refresh: the user must connect again.
    pub reconnect_needed: bool,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// When the user connected it (`2026-11-26 06:40 UTC`).
    pub connected_at: String,
    /// When a tool last used it, or "never".
    pub last_used_at: String,
}
