//! `return_to`/`next` on the sign-in and sign-out pages: same-origin paths only.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(path) = mcpauth_core::return_to::same_origin_path(raw) {
        // What it accepts is a path on this origin: never scheme- or host-relative.
        assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
        assert!(
            !path.starts_with("//") && !path.starts_with("/\\"),
            "{raw:?} -> {path:?}"
        );
    }
});
