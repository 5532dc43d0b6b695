//! The settings of the grants without a browser (issue 21), a leaf: `[client_credentials]`
//! ([`ClientCredentialsOptions`]) and `[[trusted_issuers]]` ([`TrustedIssuer`]). What they
//! mean is in `client_credentials` and `id_jag`.

use std::path::PathBuf;

use mcpauth_core::machine::MachinePolicy;
use serde::{Deserialize, Serialize};

/// `[client_credentials]`: who may get a token for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientCredentialsOptions {
    /// Turn the grant on (default false). Clients still need it among their `grant_types`.
    pub enabled: bool,
    /// Let dynamically registered (DCR) and metadata-document (CIMD) clients use it too
    /// (default false: anyone could register a machine otherwise).
    pub allow_self_registered: bool,
}

impl ClientCredentialsOptions {
    pub(crate) fn policy(self) -> MachinePolicy {
        MachinePolicy {
            enabled: self.enabled,
            allow_self_registered: self.allow_self_registered,
        }
    }
}

/// How the subject of an ID-JAG becomes a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectMapping {
    /// By the assertion's verified `email` (default).
    #[default]
    Email,
    /// By the account linked to the assertion's `sub` through an identity provider of the same
    /// issuer (`identity_provider`).
    Linked,
}

/// `[[trusted_issuers]]`: an enterprise identity provider whose ID-JAGs this server redeems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// A short name (lower-case letters, digits, `-`, `_`): in the audit log, and the account
    /// that users it creates are linked by (`subject = "email"`).
    pub id: String,
    /// The issuer identifier its ID-JAGs carry as `iss` (exact match).
    pub issuer: String,
    /// Where its public keys are published (fetched by the server; http only on loopback)…
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// …or a file holding them (read at start).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The `client_id`s it may assert for (at least one).
    pub client_ids: Vec<String>,
    /// How its subjects become users: `email` (default) or `linked`.
    #[serde(default)]
    pub subject: SubjectMapping,
    /// For `subject = "linked"`: the id of the `[[identity_providers]]` entry with the same
    /// issuer.
    #[serde(default)]
    pub identity_provider: Option<String>,
    /// Create a user for a person who has no account yet (default false).
    #[serde(default)]
    pub create_users: bool,
    /// Treat its emails as verified even without `email_verified: true` (default false).
    #[serde(default)]
    pub trust_email: bool,
    /// The scopes its ID-JAGs may grant; empty: the server's `mcp_scopes`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Give a refresh token with the access token (default false: the client asks the
    /// identity provider for a new ID-JAG, so the enterprise's decisions apply at once).
    #[serde(default)]
    pub refresh_tokens: bool,
}
