//! Clients registered by configuration (`trusted_clients`, SPEC §3): written to the store at
//! start-up under the same registration rules as dynamic registration.

use mcpauth_core::model::{Client, TokenEndpointAuthMethod};
use mcpauth_core::secret;

use crate::mcp_auth::BuildError;
use crate::options::TrustedClient;

/// The stored form of a client from configuration.
pub(crate) fn trusted_client(trusted: &TrustedClient, now: i64) -> Result<Client, BuildError> {
    let invalid = |reason: String| BuildError::InvalidOption {
        option: "trusted_clients",
        reason: format!("client {:?}: {reason}", trusted.client_id),
    };
    if trusted.client_id.is_empty() || trusted.client_id.len() > 200 {
        return Err(invalid("client_id must be 1 to 200 characters".into()));
    }
    let redirect_uris = trusted
        .redirect_uris
        .iter()
        .map(|uri| {
            mcpauth_core::RedirectUri::parse(uri)
                .map(mcpauth_core::RedirectUri::into_string)
                .map_err(|e| invalid(e.description))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if redirect_uris.is_empty() {
        return Err(invalid("needs at least one redirect URI".into()));
    }
    let method = match (
        &trusted.client_secret,
        trusted.token_endpoint_auth_method.as_deref(),
    ) {
        (None, None | Some("none")) => TokenEndpointAuthMethod::None,
        (None, Some(_)) => return Err(invalid("a confidential client needs client_secret".into())),
        (Some(_), None) => TokenEndpointAuthMethod::ClientSecretBasic,
        (Some(_), Some(raw)) => match TokenEndpointAuthMethod::parse(raw) {
            Some(TokenEndpointAuthMethod::None) | None => {
                return Err(invalid(format!(
                    "token_endpoint_auth_method {raw:?} does not fit a client with a secret"
                )));
            }
            Some(method) => method,
        },
    };
    if trusted.client_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(invalid(
            "client_secret must be at least 32 characters".into(),
        ));
    }
    let grant_types = vec!["authorization_code".to_owned(), "refresh_token".to_owned()];
    Ok(Client {
        client_id: trusted.client_id.clone(),
        client_secret_hash: trusted.client_secret.as_deref().map(secret::hash_token),
        name: Some(trusted.name.clone()),
        metadata: serde_json::json!({
            "client_name": trusted.name,
            "redirect_uris": redirect_uris,
            "grant_types": grant_types,
            "token_endpoint_auth_method": method.as_str(),
        }),
        redirect_uris,
        token_endpoint_auth_method: method,
        grant_types,
        logo_uri: trusted.logo_uri.clone(),
        disabled: false,
        skip_consent: trusted.skip_consent,
        created_at: now,
    })
}
