//! The authorization endpoint's query: RFC 6749 parameters, then the request's rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcpauth_core::{AuthorizationPolicy, AuthorizationRequest, Params, Scopes};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = Params::from_query(Some(query), &["resource"]) else {
        return;
    };
    let policy = AuthorizationPolicy {
        default_scope: Scopes::parse("openid").unwrap_or_default(),
        scopes_supported: Scopes::parse("openid profile email offline_access mcp:tools")
            .unwrap_or_default(),
        consent_scopes: Scopes::parse("mcp:admin").unwrap_or_default(),
        resource: "https://mcp.example.com/api/mcp".to_owned(),
        other_resources: vec!["https://mcp.example.com/mcp/notes".to_owned()],
        require_pkce_for_confidential: true,
    };
    let _ = AuthorizationRequest::parse(&params, &policy, true);
    let _ = AuthorizationRequest::parse(&params, &policy, false);
});
