//! `return_to` (SECURITY S20): where a sign-in or sign-out page may send the browser afterwards
//! — only to a path on this origin, so that mcpauth is never an open redirector (RFC 9700
//! §4.11, OAuth 2.1 §7.12).

/// `raw` when it is a path on this origin, safe to send as a `Location`: one leading `/` (not
/// `//` or `/\`, which browsers read as another host), printable ASCII only (no backslash, no
/// control characters or spaces, which browsers strip or turn into `/`), at most 2048 bytes,
/// and the same after percent-decoding (`/%5Cevil.test`, `/%2F/evil.test`). Anything else —
/// absolute URLs, `javascript:`, protocol-relative URLs — is `None`.
pub fn same_origin_path(raw: &str) -> Option<&str> {
    if raw.len() > 2048 || !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return None;
    }
    let mut current = raw.as_bytes().to_vec();
    // Checked as sent and after each round of decoding; a value still changing after four
    // rounds is refused.
    for _ in 0..4 {
        if !is_local_path(&current) {
            return None;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return url::Url::parse(raw).is_err().then_some(raw);
        }
        current = decoded;
    }
    None
}

fn is_local_path(path: &[u8]) -> bool {
    matches!(path, [b'/', rest @ ..] if !matches!(rest.first(), Some(b'/' | b'\\')))
        && !path.iter().any(|&b| b == b'\\' || b.is_ascii_control())
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if let [b'%', h, l, ..] = input[i..]
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            // Two hex digits: at most 0xff.
            out.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn s20_same_origin_paths_are_accepted() {
        for path in [
            "/",
            "/account",
            "/account?done=revoked",
            "/a/b?c=d#e",
            "/caf%C3%A9",
        ] {
            assert_eq!(same_origin_path(path), Some(path), "{path}");
        }
    }

    #[test]
    fn s20_anything_that_could_leave_the_origin_is_refused() {
        for hostile in [
            "",
            "account",
            "//evil.test",
            "///evil.test",
            "https://evil.test",
            "http:/evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "/%5Cevil.test",
            "/%5cevil.test",
            "/%255Cevil.test",
            "/%2F/evil.test",
            "/%2f%2fevil.test",
            "/\t/evil.test",
            "/%09/evil.test",
            "/ /evil.test",
            "/a\nb",
            "/é",
            "javascript:alert(1)",
            " /account",
        ] {
            assert_eq!(same_origin_path(hostile), None, "{hostile:?}");
        }
        assert_eq!(same_origin_path(&format!("/{}", "a".repeat(2048))), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/a%2Fb%2fc"), b"/a/b/c");
        assert_eq!(percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(percent_decode(b"%25%35C"), b"%5C");
    }

    proptest! {
        #[test]
        fn s20_accepted_paths_stay_on_the_origin(raw in "[ -~]{0,40}") {
            if let Some(path) = same_origin_path(&raw) {
                prop_assert!(path.starts_with('/'));
                prop_assert!(!path.starts_with("//"));
                prop_assert!(!path.contains('\\'));
            }
        }
    }
}
