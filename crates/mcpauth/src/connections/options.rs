//! A configured connection (`[[connections]]`): which provider, mcpauth's client there, the
//! scopes it asks for.

/// Which kind of provider a connection is, and where its endpoints are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionKind {
    /// GitHub (an OAuth app or a GitHub app's user tokens): github.com's endpoints, revocation
    /// through GitHub's `DELETE /applications/{client_id}/grant`.
    Github,
    /// Any OAuth 2.0 provider, by its endpoints.
    OAuth2 {
        /// The authorization endpoint.
        authorization_url: String,
        /// The token endpoint.
        token_url: String,
        /// The RFC 7009 revocation endpoint, when the provider has one.
        revocation_url: Option<String>,
    },
    /// An OpenID provider: its endpoints are read from
    /// `{issuer}/.well-known/openid-configuration` at first use.
    Oidc {
        /// The provider's issuer identifier.
        issuer: String,
    },
}

/// A service users may connect (a `[[connections]]` entry). Its `Debug` leaves out the
/// client secret.
#[derive(Clone)]
pub struct ConnectionOptions {
    /// Lower-case letters, digits, `-` and `_`, at most 32; unique. In URLs
    /// (`{base_path}/connections/{id}/callback`) and in the gateway's `[[upstreams]]`.
    pub id: String,
    /// Shown on the account page ("GitHub").
    pub name: String,
    /// The provider.
    pub kind: ConnectionKind,
    /// mcpauth's client id at the provider.
    pub client_id: String,
    /// mcpauth's client secret at the provider (sent with HTTP Basic authentication; GitHub:
    /// in the form).
    pub client_secret: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request (e.g. Google's `access_type=offline`
    /// and `prompt=consent`, without which it issues no refresh token).
    pub authorization_params: Vec<(String, String)>,
}

impl std::fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Whether `id` may name a connection.
pub(crate) fn valid_connection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The reason a set of connections cannot be used, if any.
pub(crate) fn check(connections: &[ConnectionOptions]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for c in connections {
        if !valid_connection_id(&c.id) {
            return Err(format!(
                "connection id {:?}: lower-case letters, digits, - and _, at most 32",
                c.id
            ));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(format!("connection id {:?} is given twice", c.id));
        }
        if c.client_id.is_empty() || c.client_secret.is_empty() {
            return Err(format!(
                "connection {:?}: client_id and client_secret are required",
                c.id
            ));
        }
        let urls: Vec<&str> = match &c.kind {
            ConnectionKind::Github => Vec::new(),
            ConnectionKind::OAuth2 {
                authorization_url,
                token_url,
                revocation_url,
            } => {
                let mut urls = vec![authorization_url.as_str(), token_url.as_str()];
                urls.extend(revocation_url.as_deref());
                urls
            }
            ConnectionKind::Oidc { issuer } => vec![issuer.as_str()],
        };
        for url in urls {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {}
                _ => {
                    return Err(format!(
                        "connection {:?}: {url:?} is not an http(s) URL",
                        c.id
                    ));
                }
            }
        }
    }
    Ok(())
}
