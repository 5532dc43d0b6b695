//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` offers no protection against a
//! stolen authorization request and OAuth 2.1 drops it.

use crate::error::OAuthError;
use crate::secret::{constant_time_eq, sha256_b64url};

/// Checks a `code_challenge` from an authorization request: the base64url SHA-256 of a
/// verifier is always 43 characters.
pub fn validate_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => {}
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "code_challenge_method {other:?} is not supported; use S256"
            )));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256",
            ));
        }
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ))
    }
}

/// Checks that a `code_verifier` has the form RFC 7636 §4.1 requires: 43 to 128 characters of
/// `[A-Za-z0-9-._~]`.
pub fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// True when `verifier` hashes to `challenge` under S256.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    verifier_is_well_formed(verifier)
        && constant_time_eq(
            sha256_b64url(verifier.as_bytes()).as_bytes(),
            challenge.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_example_verifies() {
        assert!(verify_s256(VERIFIER, CHALLENGE));
        assert!(validate_challenge(CHALLENGE, Some("S256")).is_ok());
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        assert!(validate_challenge(CHALLENGE, Some("plain")).is_err());
        assert!(validate_challenge(CHALLENGE, None).is_err());
        assert!(validate_challenge("short", Some("S256")).is_err());
    }

    #[test]
    fn malformed_verifiers_fail() {
        assert!(!verify_s256("", CHALLENGE));
        assert!(!verify_s256(&"a".repeat(129), CHALLENGE));
        assert!(!verify_s256(&format!("{VERIFIER}!"), CHALLENGE));
    }

    proptest! {
        #[test]
        fn any_well_formed_verifier_matches_only_its_own_challenge(
            v in "[A-Za-z0-9._~-]{43,128}", w in "[A-Za-z0-9._~-]{43,128}"
        ) {
            let challenge = sha256_b64url(v.as_bytes());
            prop_assert!(validate_challenge(&challenge, Some("S256")).is_ok());
            prop_assert!(verify_s256(&v, &challenge));
            prop_assert_eq!(verify_s256(&w, &challenge), v == w);
        }
    }
}
