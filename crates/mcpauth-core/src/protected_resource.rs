//! Where a protected resource (RFC 8707: the audience of its tokens) is served, and where its
//! metadata lives (RFC 9728 §3.1): the metadata path is the well-known prefix with the
//! resource's path inserted after it. One rule for the router, the challenges, the gateway and
//! the demo server.

/// The well-known prefix of protected resource metadata (RFC 9728 §3).
pub const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// Where a protected resource is served and described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLocation {
    /// The path it is served at, without a trailing slash (`/api/mcp`; empty for the root).
    pub path: String,
    /// The path of its metadata document: `/.well-known/oauth-protected-resource{path}`.
    pub metadata_path: String,
    /// The absolute URL of its metadata document, as named in its challenges (RFC 9728 §5.1).
    pub metadata_url: String,
}

/// The location of the resource whose canonical URI is `resource`.
pub fn locate(resource: &url::Url) -> ResourceLocation {
    let path = resource.path().trim_end_matches('/').to_owned();
    let metadata_path = format!("{METADATA_PREFIX}{path}");
    ResourceLocation {
        metadata_url: format!("{}{metadata_path}", resource.origin().ascii_serialization()),
        metadata_path,
        path,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(raw: &str) -> ResourceLocation {
        locate(&url::Url::parse(raw).unwrap())
    }

    #[test]
    fn paths_and_metadata_urls() {
        let mcp = at("https://mcp.example.com/api/mcp/");
        assert_eq!(mcp.path, "/api/mcp");
        assert_eq!(
            mcp.metadata_path,
            "/.well-known/oauth-protected-resource/api/mcp"
        );
        assert_eq!(
            mcp.metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp"
        );
        let root = at("http://localhost:3000");
        assert_eq!(root.path, "");
        assert_eq!(
            root.metadata_url,
            "http://localhost:3000/.well-known/oauth-protected-resource"
        );
    }
}
