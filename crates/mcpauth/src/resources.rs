//! The protected resources tokens are issued for (RFC 8707): the main MCP endpoint
//! ([`McpAuthOptions::resource`](crate::McpAuthOptions::resource)) and any others
//! ([`ProtectedResource`]), each with its path and metadata URL (RFC 9728 §3.1, by core's
//! `protected_resource::locate`), the scopes every request needs and the scopes it advertises.

use mcpauth_core::protected_resource;

use crate::access_token_jwt::AccessTokenFormat;
use crate::options::ProtectedResource;

/// One protected resource, as checked at start-up.
#[derive(Debug)]
pub(crate) struct Resource {
    /// Canonical URI: the audience of its tokens.
    pub uri: String,
    /// Where its metadata lives, as named in its challenges.
    pub metadata_url: String,
    /// The path its metadata is served at (`/.well-known/oauth-protected-resource/api/mcp`).
    pub metadata_path: String,
    pub name: String,
    /// Scopes every request needs.
    pub scopes: Vec<String>,
    /// `scopes_supported` of its metadata document.
    pub scopes_supported: Vec<String>,
    /// The form of the access tokens issued for it.
    pub access_token_format: AccessTokenFormat,
}

impl Resource {
    /// The resource at `uri` (already parsed as `url`).
    fn new(
        uri: &str,
        url: &url::Url,
        name: &str,
        scopes: &[String],
        scopes_supported: Vec<String>,
    ) -> Self {
        let location = protected_resource::locate(url);
        Self {
            uri: uri.to_owned(),
            metadata_url: location.metadata_url,
            metadata_path: location.metadata_path,
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            scopes_supported,
            access_token_format: AccessTokenFormat::Opaque,
        }
    }

    /// This resource, its access tokens issued in `format`.
    pub fn with_format(mut self, format: AccessTokenFormat) -> Self {
        self.access_token_format = format;
        self
    }

    /// The main resource. Its metadata advertises only the scopes an ordinary call needs
    /// (`mcp_scopes`): clients that ask for every advertised scope (VS Code, Codex) then get
    /// what they need and never a scope that must be consented to on its own.
    pub fn main(uri: &str, url: &url::Url, name: &str, scopes: &[String]) -> Self {
        Self::new(uri, url, name, scopes, scopes.to_vec())
    }

    /// Another resource (a gateway upstream): it advertises the scopes every call to it needs,
    /// not the extra scopes of single tools (asked for by step-up when a tool needs them).
    pub fn other(options: &ProtectedResource, url: &url::Url) -> Self {
        Self::new(
            &options.resource,
            url,
            &options.name,
            &options.scopes,
            options.scopes.clone(),
        )
        .with_format(options.access_token_format)
    }
}
