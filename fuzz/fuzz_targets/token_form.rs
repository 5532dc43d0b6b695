//! Token and revocation request bodies, form or JSON (first byte picks the content type).
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    let content_type = if kind % 2 == 0 {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(params) = mcpauth::fuzzing::params_from_body(&headers, body) {
        let _ = params.get("grant_type");
        let _ = params.get("token");
    }
});
