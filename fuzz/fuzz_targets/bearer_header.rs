//! The `Authorization: Bearer …` header.
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(header::AUTHORIZATION, value.clone());
    let _ = mcpauth::fuzzing::bearer_token(&headers);
    headers.append(header::AUTHORIZATION, value);
    let _ = mcpauth::fuzzing::bearer_token(&headers);
});
