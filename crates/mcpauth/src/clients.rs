//! Clients registered by configuration (`trusted_clients`, SPEC §3): written to the store at
//! start-up under the same registration rules as dynamic registration.

use mcpauth_core::client_registration::ConfiguredClient;
use mcpauth_core::model::Client;
use mcpauth_core::secret;

use crate::mcp_auth::BuildError;
use crate::options::TrustedClient;

/// The stored form of a client from configuration.
pub(crate) fn trusted_client(trusted: &TrustedClient, now: i64) -> Result<Client, BuildError> {
    let configured = ConfiguredClient {
        client_id: &trusted.client_id,
        client_secret: trusted.client_secret.as_deref(),
        token_endpoint_auth_method: trusted.token_endpoint_auth_method.as_deref(),
        name: &trusted.name,
        redirect_uris: &trusted.redirect_uris,
        logo_uri: trusted.logo_uri.as_deref(),
    };
    let registration = configured
        .validate()
        .map_err(|error| BuildError::InvalidOption {
            option: "trusted_clients",
            reason: format!("client {:?}: {error}", trusted.client_id),
        })?;
    Ok(registration.into_client(
        trusted.client_id.clone(),
        trusted.client_secret.as_deref().map(secret::hash_token),
        trusted.skip_consent,
        now,
    ))
}
