//! Secrets: random tokens, their at-rest hashes, constant-time comparison, HMAC signatures and
//! the sealed (encrypted and authenticated) refresh-retry response.
//!
//! Every token, code and client secret mcpauth hands out is 256 bits from the OS random source,
//! written base64url. Only its SHA-256 digest is stored: a high-entropy secret needs no salt or
//! slow hash, and a database dump cannot be replayed (SECURITY S24).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is unrecoverable for an authorization server: every
    // secret it would hand out depends on it.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// A new random secret of 256 bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A new random identifier of 128 bits, base64url without padding (22 characters).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// A new identifier that sorts by creation time: the milliseconds since the Unix epoch as 12
/// hex digits, then 80 random bits base64url (26 characters). For the keys of rows that several
/// indexes refer to (token families): a new key lands at the end of each index, on a page the
/// writer has just written, instead of on a random page of its own.
pub fn ordered_id() -> String {
    let mut id = time_prefix();
    URL_SAFE_NO_PAD.encode_string(random_bytes::<10>(), &mut id);
    id
}

/// A new random secret of 256 bits that sorts by creation time: the 12 hex digits of
/// [`ordered_id`], then 43 characters as [`random_token`] (55 characters). For the codes and
/// tokens the store keeps many rows of: [`hash_token`] keeps the time prefix in front of the
/// digest, so a new row's entry lands at the end of the table's token index, on a page the
/// writer has just written, instead of on a random page (an opaque token's lifetime and issue
/// time are no secret: `expires_in` says as much).
pub fn ordered_token() -> String {
    let mut token = time_prefix();
    URL_SAFE_NO_PAD.encode_string(random_bytes::<32>(), &mut token);
    token
}

/// The milliseconds since the Unix epoch as 12 hex digits (the clock's low 48 bits).
fn time_prefix() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{:012x}", ms & 0xffff_ffff_ffff)
}

/// The time prefix of an [`ordered_token`]: `None` for any other string.
fn ordered_prefix(token: &str) -> Option<&str> {
    let prefix = token.get(..12)?;
    let ordered = token.len() == 55
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ordered.then_some(prefix)
}

/// The at-rest form of a token: SHA-256, base64url; after the time prefix of an
/// [`ordered_token`].
pub fn hash_token(token: &str) -> String {
    let prefix = ordered_prefix(token).unwrap_or_default();
    let mut hash = String::with_capacity(prefix.len() + 43);
    hash.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(Sha256::digest(token.as_bytes()), &mut hash);
    hash
}

/// SHA-256 of `input`, base64url without padding (the PKCE S256 transform).
pub fn sha256_b64url(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[allow(clippy::panic)]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of any length")
}

/// HMAC-SHA256 of `message` under `key`, base64url.
pub fn sign(key: &[u8], message: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, message))
}

/// Checks a signature made by [`sign`], in constant time.
pub fn verify(key: &[u8], message: &[u8], signature: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(signature) {
        Ok(given) => constant_time_eq(&mac(key, message), &given),
        Err(_) => false,
    }
}

/// Encrypts `plaintext` under a key derived from `secret` (a token the client holds), so that
/// only someone presenting that token can read it back. The output is base64url.
pub fn seal(secret: &str, plaintext: &[u8]) -> String {
    let cipher = cipher_for(secret);
    let nonce_bytes = random_bytes::<12>();
    let nonce = Nonce::from(nonce_bytes);
    let mut out = nonce_bytes.to_vec();
    // Encryption with a fresh nonce and an in-memory buffer does not fail.
    if let Ok(ciphertext) = cipher.encrypt(&nonce, plaintext) {
        out.extend_from_slice(&ciphertext);
    }
    URL_SAFE_NO_PAD.encode(out)
}

/// Decrypts what [`seal`] produced with the same `secret`; `None` if it was not sealed under it.
pub fn open(secret: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce_bytes, ciphertext) = raw.split_at(12);
    let nonce_array: [u8; 12] = nonce_bytes.try_into().ok()?;
    cipher_for(secret)
        .decrypt(&Nonce::from(nonce_array), ciphertext)
        .ok()
}

fn cipher_for(secret: &str) -> ChaCha20Poly1305 {
    let key = mac(secret.as_bytes(), b"mcpauth refresh-retry v1");
    ChaCha20Poly1305::new(&Key::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_time_and_are_distinct() {
        let a = ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ordered_id();
        assert_eq!((a.len(), b.len()), (26, 26));
        assert!(a < b, "{a} < {b}");
        assert_ne!(ordered_id(), ordered_id());
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a), hash_token(&a));
    }

    #[test]
    fn ordered_tokens_hash_in_time_order() {
        let a = ordered_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ordered_token();
        assert_eq!((a.len(), b.len()), (55, 55));
        assert_ne!(ordered_token(), ordered_token());
        let (hash_a, hash_b) = (hash_token(&a), hash_token(&b));
        assert!(hash_a < hash_b, "{hash_a} < {hash_b}");
        assert_eq!(hash_a.len(), 12 + 43);
        assert_eq!(&hash_a[..12], &a[..12]);
        // The digest covers the whole token, prefix and all.
        let mut other_time = a.clone();
        other_time.replace_range(..12, "000000000000");
        assert_ne!(hash_token(&other_time)[12..], hash_a[12..]);
        // Only an ordered token's shape keeps a prefix.
        assert_eq!(hash_token(&a[1..]).len(), 43);
        assert_eq!(hash_token(&format!("G{}", &a[1..])).len(), 43);
        let split_char = format!("{}é{}", "a".repeat(11), "a".repeat(42));
        assert_eq!(split_char.len(), 55);
        assert_eq!(hash_token(&split_char).len(), 43);
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let sig = sign(b"key", b"message");
        assert!(verify(b"key", b"message", &sig));
        assert!(!verify(b"other", b"message", &sig));
        assert!(!verify(b"key", b"messagf", &sig));
        assert!(!verify(b"key", b"message", "not base64 !"));
    }

    #[test]
    fn sealed_data_opens_only_with_its_secret() {
        let sealed = seal("rt-1", b"{\"access_token\":\"x\"}");
        assert_eq!(
            open("rt-1", &sealed).as_deref(),
            Some(&b"{\"access_token\":\"x\"}"[..])
        );
        assert_eq!(open("rt-2", &sealed), None);
        assert_eq!(open("rt-1", "AAAA"), None);
    }
}
