//! The protected resources tokens are issued for (RFC 8707): the main MCP endpoint
//! ([`McpAuthOptions::resource`](crate::McpAuthOptions::resource)) and any others
//! ([`ProtectedResource`]), each with its path, metadata URL (RFC 9728 §3.1, path-inserted),
//! the scopes every request needs and the scopes it advertises.

use mcpauth_core::Scopes;

use crate::options::ProtectedResource;

/// One protected resource, as checked at start-up.
#[derive(Debug)]
pub(crate) struct Resource {
    /// Canonical URI: the audience of its tokens.
    pub uri: String,
    /// Its path, e.g. `/api/mcp`, without a trailing slash.
    pub path: String,
    /// Where its metadata lives, as named in its challenges.
    pub metadata_url: String,
    pub name: String,
    /// Scopes every request needs.
    pub scopes: Vec<String>,
    /// `scopes_supported` of its metadata document.
    pub scopes_supported: Vec<String>,
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
        let path = url.path().trim_end_matches('/').to_owned();
        Self {
            uri: uri.to_owned(),
            metadata_url: format!(
                "{}/.well-known/oauth-protected-resource{path}",
                url.origin().ascii_serialization(),
            ),
            path,
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            scopes_supported,
        }
    }

    /// The main resource: it advertises every scope the server grants but `offline_access`.
    pub fn main(
        uri: &str,
        url: &url::Url,
        name: &str,
        scopes: &[String],
        supported: &Scopes,
    ) -> Self {
        let advertised = supported
            .iter()
            .filter(|s| *s != "offline_access")
            .map(str::to_owned)
            .collect();
        Self::new(uri, url, name, scopes, advertised)
    }

    /// Another resource: it advertises the OpenID scopes and its own.
    pub fn other(options: &ProtectedResource, url: &url::Url) -> Self {
        let mut advertised: Vec<String> = ["openid", "profile", "email"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for scope in options.scopes.iter().chain(&options.extra_scopes) {
            if !advertised.contains(scope) {
                advertised.push(scope.clone());
            }
        }
        Self::new(
            &options.resource,
            url,
            &options.name,
            &options.scopes,
            advertised,
        )
    }
}
