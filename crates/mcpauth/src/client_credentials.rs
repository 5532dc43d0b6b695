//! The `client_credentials` grant (RFC 6749 §4.4; the MCP auth extension "OAuth Client
//! Credentials", SEP-1046): a machine — a CI job, an unattended agent, a backend — gets a token
//! for itself. Off by default (`[client_credentials] enabled`); only for confidential clients
//! the operator created (`[[trusted_clients]]` or `mcpauth client create --grant
//! client_credentials`) that registered the grant, unless self-registered clients are allowed
//! explicitly (SECURITY E1, rules in [`mcpauth_core::machine`]).
//!
//! The token has no user: its subject is the client ([`crate::McpSession::user_id`] is
//! `None`). Its scopes are the client's allowed ones (an over-asked scope is refused, never
//! narrowed), its resource one the client may use, and it never comes with a refresh token
//! (the machine holds its credentials and asks again).

use mcpauth_core::machine;
use mcpauth_core::model::{Client, GrantType};
use mcpauth_core::{ErrorCode, OAuthError, Params, Scopes, cimd};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::errors::OAuthJson;

/// A grant the token endpoint makes without an authorization code (`client_credentials`, an
/// ID-JAG): decided here and in `id_jag`, minted and stored by the token endpoint in one
/// transaction (`Store::issue_direct_grant`).
pub(crate) struct DirectGrant {
    /// The user; `None` for a machine.
    pub(crate) user_id: Option<String>,
    /// The granted scopes.
    pub(crate) scopes: Scopes,
    /// The resource the tokens are for.
    pub(crate) resource: String,
    /// The grant's absolute end when a refresh token is issued with it; `None`: no refresh
    /// token.
    pub(crate) refresh_until: Option<i64>,
    /// What the audit log's `token.issue` entry says besides the family and scope.
    pub(crate) audit_detail: Value,
}

/// Scopes that describe a person: never in a machine's token (it has no user).
pub(crate) const USER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Refuses a self-registration (DCR) that asks for a grant a self-registered client may not
/// have: `client_credentials` unless allowed, jwt-bearer unless an issuer is trusted.
pub(crate) fn check_self_registered_grants(
    auth: &McpAuth,
    grant_types: &[GrantType],
) -> Result<(), OAuthError> {
    let options = auth.options();
    let policy = options.client_credentials.policy();
    if grant_types.contains(&GrantType::ClientCredentials)
        && !(policy.enabled && policy.allow_self_registered)
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "client_credentials is not available to dynamically registered clients on this server",
        ));
    }
    if grant_types.contains(&GrantType::JwtBearer) && options.trusted_issuers.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the jwt-bearer grant is not enabled on this server (no trusted issuer)",
        ));
    }
    Ok(())
}

/// The resource a grant without a browser is for: the one named (at most one, one of this
/// server's, and one of `allowed` when that is not empty), else the main resource (or the first
/// allowed one). `invalid_target` names the rule that failed.
pub(crate) fn choose_resource(
    auth: &McpAuth,
    requested: &[&str],
    allowed: &[String],
) -> Result<String, OAuthError> {
    let chosen = match requested {
        [] => allowed
            .first()
            .cloned()
            .unwrap_or_else(|| auth.main_resource().uri.clone()),
        [one] => (*one).to_owned(),
        _ => {
            return Err(OAuthError::invalid_target(
                "name one resource per token request",
            ));
        }
    };
    if auth.resource(&chosen).is_none() {
        return Err(OAuthError::invalid_target(
            "resource is not a resource of this server",
        ));
    }
    if !allowed.is_empty() && !allowed.contains(&chosen) {
        return Err(OAuthError::invalid_target(
            "resource is not one this client may get tokens for",
        ));
    }
    Ok(chosen)
}

/// The scopes `configured` (or the server's `mcp_scopes`) that this server grants and that
/// describe no person.
pub(crate) fn grantable_scopes(auth: &McpAuth, configured: Option<Scopes>) -> Scopes {
    let configured = configured
        .unwrap_or_else(|| Scopes::from_tokens(auth.options().mcp_scopes.iter().cloned()));
    Scopes::from_tokens(
        configured
            .only_in(auth.scopes_supported())
            .iter()
            .filter(|s| !USER_SCOPES.contains(s))
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    )
}

/// `grant_type=client_credentials`, for the authenticated `client`: the grant to make, or the
/// refusal (nothing written either way).
pub(crate) fn client_credentials(
    auth: &McpAuth,
    client: &Client,
    params: &Params,
) -> Result<DirectGrant, OAuthJson> {
    auth.options()
        .client_credentials
        .policy()
        .admits(client, cimd::is_document_url(&client.client_id))?;
    let resource = choose_resource(
        auth,
        &params.all("resource"),
        &machine::registered_resources(client),
    )?;
    let allowed = grantable_scopes(auth, machine::registered_scopes(client));
    let scopes = machine::machine_scopes(params.get("scope"), &allowed)?;
    Ok(DirectGrant {
        user_id: None,
        scopes,
        resource: resource.clone(),
        refresh_until: None,
        audit_detail: json!({ "grant_type": "client_credentials", "resource": resource }),
    })
}
