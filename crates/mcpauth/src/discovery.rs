//! Discovery documents: authorization server metadata (RFC 8414, also served as the OpenID
//! configuration) and protected resource metadata (RFC 9728). Only endpoints that exist are
//! advertised.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::resources::Resource;

/// The claims id_tokens and userinfo carry (OIDC Core §2, §5.1), by scope.
const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "name",
    "given_name",
    "family_name",
    "picture",
    "updated_at",
    "email",
    "email_verified",
];

impl McpAuth {
    /// The authorization server metadata document (RFC 8414 §2), with the `metadata` option
    /// merged last.
    pub fn authorization_server_metadata(&self) -> Value {
        let o = &self.options();
        let mut doc = json!({
            "issuer": o.issuer,
            "authorization_endpoint": self.endpoint("/mcp/authorize"),
            "token_endpoint": self.endpoint("/mcp/token"),
            "scopes_supported": self.ordinary_scopes(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": o.cimd.enabled,
            "revocation_endpoint": self.endpoint("/mcp/revoke"),
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint": self.endpoint("/mcp/introspect"),
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "userinfo_endpoint": self.endpoint("/mcp/userinfo"),
            "jwks_uri": self.endpoint("/mcp/jwks"),
            "id_token_signing_alg_values_supported": [o.signing_algorithm.as_str()],
            "claims_supported": CLAIMS_SUPPORTED,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
        });
        if let Value::Object(map) = &mut doc {
            self.machine_metadata(map);
            if o.allow_dynamic_client_registration {
                map.insert(
                    "registration_endpoint".into(),
                    Value::String(self.endpoint("/mcp/register")),
                );
            }
            // RFC 9449 §5.1: DPoP proofs are accepted at the token endpoint.
            map.insert(
                "dpop_signing_alg_values_supported".into(),
                json!(crate::dpop::ALGORITHMS),
            );
            for (key, value) in &o.metadata {
                map.insert(key.clone(), value.clone());
            }
        }
        doc
    }

    /// What the grants without a browser add (issue 21), only when they are on:
    /// `client_credentials` and the jwt-bearer grant in `grant_types_supported`, and
    /// `private_key_jwt` (always accepted) with its algorithms beside every endpoint's
    /// authentication methods.
    fn machine_metadata(&self, map: &mut serde_json::Map<String, Value>) {
        let o = self.options();
        if let Some(Value::Array(grants)) = map.get_mut("grant_types_supported") {
            if o.client_credentials.enabled {
                grants.push(Value::from("client_credentials"));
            }
            if !o.trusted_issuers.is_empty() {
                grants.push(Value::from(mcpauth_core::model::JWT_BEARER));
            }
        }
        let algorithms: Vec<&str> = mcpauth_core::machine::ASSERTION_ALGORITHMS.to_vec();
        for endpoint in [
            "token_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
        ] {
            if let Some(Value::Array(methods)) =
                map.get_mut(&format!("{endpoint}_auth_methods_supported"))
            {
                methods.push(Value::from("private_key_jwt"));
            }
            map.insert(
                format!("{endpoint}_auth_signing_alg_values_supported"),
                Value::from(algorithms.clone()),
            );
        }
    }

    /// The scopes the authorization server advertises: every supported one but the consent
    /// scopes, which a client asking for everything advertised (VS Code, some Claude versions)
    /// must not ask for by accident (RFC 8414 §2 lets a server leave scopes out).
    fn ordinary_scopes(&self) -> Vec<&str> {
        let consent = &self.authorization_policy().consent_scopes;
        self.scopes_supported()
            .iter()
            .filter(|s| !consent.contains(s))
            .collect()
    }

    /// The protected resource metadata document (RFC 9728 §2) of the MCP endpoint. Its
    /// `scopes_supported` are the scopes an ordinary client should ask for (`mcp_scopes`):
    /// the SDKs request exactly these when the 401 challenge names none.
    pub fn protected_resource_metadata(&self) -> Value {
        resource_document(self, self.main_resource())
    }

    /// The protected resource metadata document of the resource `resource` (the main one or
    /// one of [`McpAuthOptions::resources`](crate::McpAuthOptions::resources)).
    pub fn protected_resource_metadata_for(&self, resource: &str) -> Option<Value> {
        self.resource(resource).map(|r| resource_document(self, r))
    }
}

fn resource_document(auth: &McpAuth, resource: &Resource) -> Value {
    json!({
        "resource": resource.uri,
        "authorization_servers": [auth.options().issuer],
        "scopes_supported": resource.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": resource.name,
        // RFC 9449 §7.1: a DPoP-bound token is accepted with a proof by these algorithms.
        "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS,
    })
}

fn document(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `GET /.well-known/oauth-authorization-server` and its twins: mount at the site root.
pub async fn oauth_discovery_metadata(State(auth): State<McpAuth>) -> Response {
    document(auth.authorization_server_metadata())
}

/// `GET /.well-known/oauth-protected-resource` and its twins: mount at the site root.
pub async fn oauth_protected_resource_metadata(State(auth): State<McpAuth>) -> Response {
    document(auth.protected_resource_metadata())
}

/// `GET /.well-known/oauth-protected-resource{path}` of a resource other than the main one.
pub(crate) fn other_resource_metadata(auth: &McpAuth, resource: &Resource) -> Response {
    document(resource_document(auth, resource))
}
