//! Where a page or an API may send the browser back to (SECURITY S20): `return_to` on the
//! sign-in and sign-out pages, Better Auth's `callbackURL` and `redirectTo`, the account page's
//! links — only to this origin, so that mcpauth is never an open redirector (RFC 9700 §4.11,
//! OAuth 2.1 §7.12). One rule, [`same_origin`], read the same way everywhere.

use std::borrow::Cow;

/// Why a target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReturnToRefusal {
    /// Longer than 2048 bytes.
    #[error("longer than 2048 bytes")]
    TooLong,
    /// A character outside printable ASCII, a space or a backslash: browsers strip some and
    /// read others as `/`, so what they follow is not what was checked.
    #[error("characters a browser would strip or reinterpret")]
    Characters,
    /// Neither a path (`/…`, not `//host` or `/\host`) nor an absolute URL: relative paths,
    /// `javascript:` and the like.
    #[error("not a path on this origin")]
    NotAPath,
    /// A path that, percent-decoded (up to four times), would leave the origin
    /// (`/%2F/evil.test`, `/%5Cevil.test`) or that keeps changing when decoded.
    #[error("a path that leaves the origin once decoded")]
    Encoded,
    /// An absolute URL of another origin (scheme, host or port).
    #[error("another origin")]
    OtherOrigin,
    /// An absolute URL with a user name or password.
    #[error("credentials in the URL")]
    Credentials,
}

/// The target `raw` names, as a path on this origin safe to send as a `Location`, or why not.
///
/// Accepted: a path — one leading `/` (not `//` or `/\`, which browsers read as another
/// host), printable ASCII only (no backslash, no control characters or spaces), at most 2048
/// bytes, and the same after percent-decoding (`/%5Cevil.test`, `/%2F/evil.test` are refused) —
/// returned as it is; or an absolute URL of `issuer`'s origin (scheme, host and port; no
/// credentials), returned as its path and query, which must pass the same rule (the fragment
/// is dropped). Anything else — other origins, `javascript:`, protocol-relative URLs — is
/// refused.
pub fn same_origin<'a>(raw: &'a str, issuer: &str) -> Result<Cow<'a, str>, ReturnToRefusal> {
    let refusal = match same_origin_path(raw) {
        Ok(path) => return Ok(Cow::Borrowed(path)),
        Err(refusal) => refusal,
    };
    // Only an absolute URL can still be of this origin; the checks above are its reason
    // otherwise.
    let Ok(url) = url::Url::parse(raw) else {
        return Err(refusal);
    };
    if refusal == ReturnToRefusal::TooLong {
        return Err(refusal);
    }
    let same_origin = url::Url::parse(issuer).is_ok_and(|issuer| issuer.origin() == url.origin());
    if !same_origin {
        return Err(ReturnToRefusal::OtherOrigin);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnToRefusal::Credentials);
    }
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    same_origin_path(&target)?;
    Ok(Cow::Owned(target))
}

/// The path rule of [`same_origin`].
fn same_origin_path(raw: &str) -> Result<&str, ReturnToRefusal> {
    if raw.len() > 2048 {
        return Err(ReturnToRefusal::TooLong);
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(ReturnToRefusal::Characters);
    }
    let mut current = raw.as_bytes().to_vec();
    // Checked as sent and after each round of decoding; a value still changing after four
    // rounds is refused.
    for round in 0..4 {
        if !is_local_path(&current) {
            return Err(if round == 0 {
                ReturnToRefusal::NotAPath
            } else {
                ReturnToRefusal::Encoded
            });
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return match url::Url::parse(raw) {
                Ok(_) => Err(ReturnToRefusal::NotAPath),
                Err(_) => Ok(raw),
            };
        }
        current = decoded;
    }
    Err(ReturnToRefusal::Encoded)
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const ISSUER: &str = "https://auth.example.com";

    fn check(raw: &str) -> Result<Cow<'_, str>, ReturnToRefusal> {
        same_origin(raw, ISSUER)
    }

    #[test]
    fn s20_same_origin_paths_are_accepted() {
        for path in [
            "/",
            "/account",
            "/account?done=revoked",
            "/a/b?c=d#e",
            "/caf%C3%A9",
        ] {
            assert_eq!(check(path).as_deref(), Ok(path), "{path}");
        }
    }

    #[test]
    fn s20_urls_of_this_origin_become_their_path() {
        for (url, path) in [
            ("https://auth.example.com/done?y=2", "/done?y=2"),
            ("https://auth.example.com", "/"),
            ("https://AUTH.example.com:443/a#frag", "/a"),
        ] {
            assert_eq!(check(url).as_deref(), Ok(path), "{url}");
        }
    }

    #[test]
    fn s20_anything_that_could_leave_the_origin_is_refused() {
        use ReturnToRefusal::*;
        for (hostile, why) in [
            ("", NotAPath),
            ("account", NotAPath),
            ("//evil.test", NotAPath),
            ("///evil.test", NotAPath),
            ("https://evil.test", OtherOrigin),
            ("https://evil.test/account", OtherOrigin),
            ("http://auth.example.com/x", OtherOrigin),
            ("https://auth.example.com:444/x", OtherOrigin),
            ("https://auth.example.com.evil.test/x", OtherOrigin),
            ("https://user@auth.example.com/x", Credentials),
            ("https://auth.example.com/%2F/evil.test", Encoded),
            ("http:/evil.test", OtherOrigin),
            ("/\\evil.test", Characters),
            ("\\\\evil.test", Characters),
            ("/%5Cevil.test", Encoded),
            ("/%5cevil.test", Encoded),
            ("/%255Cevil.test", Encoded),
            ("/%2F/evil.test", Encoded),
            ("/%2f%2fevil.test", Encoded),
            ("/%25252525252F/evil.test", Encoded),
            ("/\t/evil.test", Characters),
            ("/%09/evil.test", Encoded),
            ("/ /evil.test", Characters),
            ("/a\nb", Characters),
            ("/é", Characters),
            ("javascript:alert(1)", OtherOrigin),
            (" /account", Characters),
        ] {
            assert_eq!(check(hostile), Err(why), "{hostile:?}");
        }
        assert_eq!(check(&format!("/{}", "a".repeat(2048))), Err(TooLong));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/a%2Fb%2fc"), b"/a/b/c");
        assert_eq!(percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(percent_decode(b"%25%35C"), b"%5C");
    }

    /// What a browser would make of `target` (an accepted answer), resolved against the issuer.
    fn followed(target: &str) -> url::Url {
        url::Url::parse(ISSUER).unwrap().join(target).unwrap()
    }

    fn hostile_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just("\\".to_owned()),
            Just("%2F".to_owned()),
            Just("%5C".to_owned()),
            Just("%25".to_owned()),
            Just("%2f".to_owned()),
            Just("%09".to_owned()),
            Just("\t".to_owned()),
            Just("\n".to_owned()),
            Just("\0".to_owned()),
            Just(" ".to_owned()),
            Just("@".to_owned()),
            Just(":".to_owned()),
            Just("https:".to_owned()),
            Just("evil.test".to_owned()),
            Just("auth.example.com".to_owned()),
            Just("https://auth.example.com".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            "[a-z]{1,3}",
        ]
    }

    proptest! {
        #[test]
        fn s20_accepted_targets_are_same_origin_paths(raw in "[ -~]{0,40}") {
            if let Ok(path) = check(&raw) {
                prop_assert!(path.starts_with('/'));
                prop_assert!(!path.starts_with("//"));
                prop_assert!(!path.contains('\\'));
                prop_assert_eq!(followed(&path).origin(), followed("/").origin());
            }
        }

        #[test]
        fn s20_built_from_hostile_pieces_nothing_leaves_the_origin(
            pieces in proptest::collection::vec(hostile_piece(), 1..8)
        ) {
            let raw = pieces.concat();
            if let Ok(path) = check(&raw) {
                prop_assert!(path.starts_with('/') && !path.starts_with("//"), "{raw:?} -> {path:?}");
                prop_assert!(path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'), "{raw:?} -> {path:?}");
                prop_assert_eq!(followed(&path).origin(), followed("/").origin(), "{:?}", raw);
                // Decoded, it is still a path on this origin.
                let decoded = percent_decode(path.as_bytes());
                prop_assert!(is_local_path(&decoded), "{raw:?} -> {path:?}");
            }
        }

        #[test]
        fn s20_any_string_gets_an_answer(raw in any::<String>()) {
            if let Ok(path) = check(&raw) {
                prop_assert!(path.starts_with('/') && !path.starts_with("//"));
            }
        }
    }
}
