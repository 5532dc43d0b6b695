//! A dynamic client registration body (RFC 7591).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcpauth_core::{ClientRegistration, Scopes};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(request)) = serde_json::from_slice(data) else {
        return;
    };
    let supported =
        Scopes::parse("openid profile email offline_access mcp:tools").unwrap_or_default();
    let _ = ClientRegistration::parse(&request, &supported);
});
