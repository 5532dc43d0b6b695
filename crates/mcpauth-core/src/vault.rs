//! The token vault's keys (SECURITY V1): the third-party tokens of connected accounts are
//! sealed with ChaCha20-Poly1305 under a 256-bit key the operator keeps outside the database,
//! and each ciphertext names the key it was sealed under, so keys can rotate.
//!
//! A key's id is a fingerprint of the key itself, so a stored ciphertext whose key id is not
//! in the [`Keyring`] is detected at start, before anything tries to open it: a missing or
//! wrong key is refused, never taken for an empty vault. The associated data binds each
//! ciphertext to its row (user, connection, which token), so a ciphertext copied into another
//! row does not open.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

use crate::secret::random_bytes;

/// One vault key: 32 bytes and their fingerprint. Its `Debug` shows the id only.
#[derive(Clone)]
pub struct VaultKey {
    id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a vault key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultKeyError {
    /// Not 32 bytes written in base64 (standard or URL-safe, padded or not).
    #[error(
        "a vault key is 32 random bytes in base64 (make one with `mcpauth keys generate-vault-key`)"
    )]
    Malformed,
    /// No key at all.
    #[error("no vault key was given")]
    Empty,
}

impl VaultKey {
    /// Reads a key written in base64 (standard or URL-safe alphabet, with or without padding).
    pub fn parse(text: &str) -> Result<Self, VaultKeyError> {
        let text = text.trim();
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| VaultKeyError::Malformed)?;
        let key: [u8; 32] = raw.try_into().map_err(|_| VaultKeyError::Malformed)?;
        Ok(Self::from_bytes(key))
    }

    /// A new random key, and its text form for a key file or an environment variable.
    pub fn generate() -> (Self, String) {
        let key = random_bytes::<32>();
        (Self::from_bytes(key), URL_SAFE_NO_PAD.encode(key))
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"mcpauth vault key id v1");
        hasher.update(key);
        let id = URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12]);
        Self { id, key }
    }

    /// The key's id, stored beside every ciphertext sealed under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.key))
    }
}

/// The vault keys: the first seals, every one opens what was sealed under it.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<VaultKey>,
}

impl Keyring {
    /// A keyring whose first key seals. [`VaultKeyError::Empty`] without keys.
    pub fn new(keys: Vec<VaultKey>) -> Result<Self, VaultKeyError> {
        if keys.is_empty() {
            return Err(VaultKeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// Keys written one per line or separated by commas or spaces, the current one first
    /// (the form of `MCPAUTH_VAULT_KEY` and of a key file); lines starting with `#` are
    /// comments.
    pub fn parse(text: &str) -> Result<Self, VaultKeyError> {
        let keys = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split([',', ' ', '\t']))
            .filter(|word| !word.trim().is_empty())
            .map(VaultKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        self.keys[0].id()
    }

    /// Whether a key with this id is in the ring.
    pub fn has(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// Seals `plaintext` under the current key with `context` as associated data; returns the
    /// ciphertext (nonce first), base64url.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let nonce_bytes = random_bytes::<12>();
        let mut out = nonce_bytes.to_vec();
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption with a fresh nonce into memory does not fail.
        if let Ok(ciphertext) = self.keys[0]
            .cipher()
            .encrypt(&Nonce::from(nonce_bytes), payload)
        {
            out.extend_from_slice(&ciphertext);
        }
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens what [`Keyring::seal`] sealed under the key `key_id` with the same `context`;
    /// `None` when that key is not in the ring or the ciphertext does not authenticate.
    pub fn open(&self, key_id: &str, context: &str, sealed: &str) -> Option<Vec<u8>> {
        let key = self.keys.iter().find(|k| k.id == key_id)?;
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce_bytes, ciphertext) = raw.split_at(12);
        let nonce: [u8; 12] = nonce_bytes.try_into().ok()?;
        key.cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sealed_tokens_open_only_with_their_key_and_context() {
        let (a, text_a) = VaultKey::generate();
        let (b, text_b) = VaultKey::generate();
        assert_ne!(a.id(), b.id());
        assert_eq!(VaultKey::parse(&text_a).unwrap().id(), a.id());
        let ring = Keyring::parse(&format!("{text_a}\n# old\n{text_b}\n")).unwrap();
        assert_eq!(ring.current_id(), a.id());
        assert!(ring.has(b.id()));
        let sealed = ring.seal("u1/github/access", b"gho_secret");
        assert!(!sealed.contains("gho_secret"));
        assert_eq!(
            ring.open(a.id(), "u1/github/access", &sealed).as_deref(),
            Some(&b"gho_secret"[..])
        );
        assert_eq!(ring.open(a.id(), "u2/github/access", &sealed), None);
        assert_eq!(ring.open(b.id(), "u1/github/access", &sealed), None);
        let only_b = Keyring::parse(&text_b).unwrap();
        assert_eq!(only_b.open(a.id(), "u1/github/access", &sealed), None);
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(
            VaultKey::parse("short").unwrap_err(),
            VaultKeyError::Malformed
        );
        assert_eq!(
            Keyring::parse(" \n# none\n").unwrap_err(),
            VaultKeyError::Empty
        );
        let standard = STANDARD.encode([7u8; 32]);
        assert!(VaultKey::parse(&standard).is_ok());
    }
}
