//! Where a page or an API may send the browser back to (`return_to`, `callbackURL`,
//! `redirectTo`): a same-origin path, or a URL of the issuer's origin given back as its path.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = mcpauth_core::return_to::same_origin(raw, "https://auth.example.com") {
        // What it accepts is a path on this origin: never scheme- or host-relative.
        assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
        assert!(
            !path.starts_with("//") && !path.starts_with("/\\"),
            "{raw:?} -> {path:?}"
        );
    }
});
