//! A Client ID Metadata Document and what comes with it: the `client_id` URL, the fetched body
//! and its `Cache-Control` header. The first line of the input is the URL, the second the
//! header, the rest the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcpauth_core::cimd;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let url = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or_default();
    let cache_control = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let body = parts.next().unwrap_or_default();
    let _ = cimd::is_document_url(url);
    let _ = cimd::document_host(url);
    for allow_query in [false, true] {
        let _ = cimd::parse_document_url(url, allow_query);
    }
    let _ = cimd::validate_document(url, body);
    let lifetime = cimd::cache_lifetime(cache_control, 300, 86_400);
    assert!((300..=86_400).contains(&lifetime));
});
