//! The `Cookie` header, and a signed value (the login resume cookie's format) read from it.
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, value);
    for name in [
        "mcpauth.session_token",
        "mcpauth.oidc_login_prompt",
        "__Host-mcpauth.csrf",
    ] {
        if let Some(found) = mcpauth::fuzzing::cookie(&headers, name) {
            let _ = mcpauth::fuzzing::verify_signed_value(
                "a-fuzzing-secret-of-at-least-32-characters",
                name,
                found,
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mcpauth::fuzzing::verify_signed_value(
            "a-fuzzing-secret-of-at-least-32-characters",
            "oidc_login_prompt",
            text,
        );
    }
});
