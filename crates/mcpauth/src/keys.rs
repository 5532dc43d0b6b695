//! id_token signing keys (OIDC Core §10.1): generated here, kept in the store with the private
//! half sealed under the key-encryption secret, published at `jwks_uri` with an RFC 7638
//! thumbprint as `kid`. Rotation adds a key and retires the old ones, which stay published until
//! every token they signed has expired. Keys are read from the store on use (decoded keys are
//! cached by `kid`), so a rotation by one instance — or by `mcpauth keys rotate` — takes effect
//! on every instance at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use mcpauth_core::model::SigningKey;
use mcpauth_core::{StoreError, secret};
use serde_json::Value;

use mcpauth_core::{Clock, Store};

use crate::token_cache::{Stamp, TokenCache};

/// Which algorithm new signing keys use (`signing_algorithm = "ES256"`, by its JWS name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256 (the default: small keys and signatures).
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for relying parties that need RSA.
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// Parses `ES256` or `RS256`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    fn jws(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

/// Why a signing key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key generation or decoding failed.
    #[error("signing key error: {0}")]
    Crypto(String),
}

/// A key ready to sign: its key pair parsed once, when it is loaded (jsonwebtoken's `encode`
/// parses the PKCS#8 document and checks the key again for every signature).
pub(crate) struct LoadedKey {
    pub kid: String,
    pub algorithm: Algorithm,
    signer: Signer,
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

impl LoadedKey {
    /// The JWS signature of `message` (the signing input `header.payload`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Es256(pair) => Ok(pair.sign(&rng, message).map_err(crypto)?.as_ref().to_vec()),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(crypto)?;
                Ok(signature)
            }
        }
    }
}

fn signer(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Signer, KeyError> {
    match algorithm {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map(Signer::Es256)
                .map_err(crypto)
        }
        SigningAlgorithm::Rs256 => RsaKeyPair::from_pkcs8(pkcs8)
            .map(Signer::Rs256)
            .map_err(crypto),
    }
}

/// A published key ready to verify: decoded once, when its `kid` is first seen.
pub(crate) struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The least time between two reads of the key list for an unknown `kid`: a token naming a
/// `kid` nobody published cannot make every request read the database.
const UNKNOWN_KID_REREAD: std::time::Duration = std::time::Duration::from_secs(1);

/// Decoded signing keys.
#[derive(Default)]
struct KeyCache {
    /// Decoded public keys by kid (the JWKS, as read from the store).
    verifying: RwLock<HashMap<String, Arc<VerifyingKey>>>,
    /// When the key list was last read for an unknown kid.
    verifying_read_at: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Decrypted keys by kid.
    loaded: RwLock<HashMap<String, Arc<LoadedKey>>>,
    /// The current key, with the stamp of the token cache it was looked up under: reused
    /// while that stamp is current (a rotation moves the revocation epoch), instead of reading
    /// the key list for every id_token.
    current: RwLock<Option<(Stamp, Arc<LoadedKey>)>>,
}

fn crypto(error: impl std::fmt::Display) -> KeyError {
    KeyError::Crypto(error.to_string())
}

fn encoding_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<EncodingKey, KeyError> {
    match algorithm {
        SigningAlgorithm::Es256 => Ok(EncodingKey::from_ec_der(pkcs8)),
        SigningAlgorithm::Rs256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(pkcs8)
            );
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(crypto)
        }
    }
}

/// A fresh key: its PKCS#8 private half and the decoded signing key.
fn generate(algorithm: SigningAlgorithm) -> Result<(Vec<u8>, EncodingKey), KeyError> {
    let pkcs8 = match algorithm {
        SigningAlgorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(crypto)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(crypto)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(crypto)?;
            der.as_ref().to_vec()
        }
    };
    let encoding = encoding_key(algorithm, &pkcs8)?;
    Ok((pkcs8, encoding))
}

/// The id_token signing keys of one server: what `jwks_uri` publishes, what signs, and
/// rotation. Usable on a bare store (the admin CLI's `mcpauth keys rotate`) as well as inside
/// [`crate::McpAuth`].
pub struct SigningKeys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    algorithm: SigningAlgorithm,
    key_encryption_secret: String,
    /// How long a retired key stays published: tokens it signed live as long as access tokens.
    keep_retired_for: i64,
    /// The revocation stamps that say when a cached current key must be read again.
    token_cache: Arc<TokenCache>,
    cache: KeyCache,
}

impl SigningKeys {
    /// Keys kept in `store`, new ones made with `algorithm`, private halves sealed under
    /// `key_encryption_secret`; retired keys stay published for `access_token_expires_in` plus
    /// five minutes.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        algorithm: SigningAlgorithm,
        key_encryption_secret: String,
        access_token_expires_in: i64,
    ) -> Self {
        Self::with_token_cache(
            store,
            clock,
            algorithm,
            key_encryption_secret,
            access_token_expires_in,
            Arc::new(TokenCache::new(crate::TokenCacheOptions {
                capacity: 0,
                ..Default::default()
            })),
        )
    }

    pub(crate) fn with_token_cache(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        algorithm: SigningAlgorithm,
        key_encryption_secret: String,
        access_token_expires_in: i64,
        token_cache: Arc<TokenCache>,
    ) -> Self {
        Self {
            store,
            clock,
            algorithm,
            key_encryption_secret,
            keep_retired_for: access_token_expires_in + 300,
            token_cache,
            cache: KeyCache::default(),
        }
    }

    /// Makes a new signing key with the configured algorithm, publishes it and retires the
    /// others (which stay in the JWKS until tokens they signed have expired). Returns its `kid`.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let algorithm = self.algorithm;
        let (pkcs8, encoding) = generate(algorithm)?;
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jws()).map_err(crypto)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(crypto)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match algorithm {
            SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
            SigningAlgorithm::Rs256 => KeyAlgorithm::RS256,
        });
        let now = self.clock.now();
        let key = SigningKey {
            kid: kid.clone(),
            algorithm: algorithm.as_str().to_owned(),
            private_key_sealed: secret::seal(&self.key_encryption_secret, &pkcs8),
            public_jwk: serde_json::to_string(&jwk).map_err(crypto)?,
            created_at: now,
            retired_at: None,
        };
        let rotated = self.store.rotate_signing_key(&key, now).await;
        // The epoch moved; this process's copies (the current key among them) go at once.
        self.token_cache.revoked_here();
        // The new kid is looked up at once, however recently the list was read.
        *self.cache.verifying_read_at.lock().await = None;
        rotated?;
        // Old keys go once nothing they signed can still be valid.
        self.store
            .prune_signing_keys(now - self.keep_retired_for)
            .await?;
        tracing::info!(
            kid,
            algorithm = algorithm.as_str(),
            "new id_token signing key"
        );
        Ok(kid)
    }

    /// The key that signs now, making one if there is none.
    pub(crate) async fn current(&self) -> Result<Arc<LoadedKey>, KeyError> {
        let cache = &self.token_cache;
        let Some(stamp) = cache.stamp_if_enabled(self.store.as_ref()).await? else {
            return self.load_signing_key().await;
        };
        if let Ok(current) = self.cache.current.read()
            && let Some((stamped, key)) = current.as_ref()
            && *stamped == stamp
        {
            return Ok(key.clone());
        }
        let key = self.load_signing_key().await?;
        if let Ok(mut current) = self.cache.current.write() {
            *current = Some((stamp, key.clone()));
        }
        Ok(key)
    }

    async fn load_signing_key(&self) -> Result<Arc<LoadedKey>, KeyError> {
        let keys = self.store.signing_keys().await?;
        let current = match keys.into_iter().find(|k| k.retired_at.is_none()) {
            Some(key) => key,
            None => {
                self.rotate().await?;
                self.store
                    .signing_keys()
                    .await?
                    .into_iter()
                    .find(|k| k.retired_at.is_none())
                    .ok_or_else(|| crypto("no current signing key after rotation"))?
            }
        };
        if let Ok(cache) = self.cache.loaded.read()
            && let Some(loaded) = cache.get(&current.kid)
        {
            return Ok(loaded.clone());
        }
        let algorithm = SigningAlgorithm::parse(&current.algorithm)
            .ok_or_else(|| crypto(format!("unknown algorithm {}", current.algorithm)))?;
        let pkcs8 = secret::open(&self.key_encryption_secret, &current.private_key_sealed)
            .ok_or_else(|| {
                crypto("the signing key cannot be decrypted: is key_encryption_secret the one it was made with?")
            })?;
        let loaded = Arc::new(LoadedKey {
            kid: current.kid.clone(),
            algorithm: algorithm.jws(),
            signer: signer(algorithm, &pkcs8)?,
        });
        if let Ok(mut cache) = self.cache.loaded.write() {
            cache.insert(current.kid, loaded.clone());
        }
        Ok(loaded)
    }

    /// The published key `kid`, decoded: from memory, or — for a kid not seen yet — from the
    /// store's key list, read at most once per [`UNKNOWN_KID_REREAD`]. `None`: no such key.
    pub(crate) async fn verifying_key(
        &self,
        kid: &str,
    ) -> Result<Option<Arc<VerifyingKey>>, KeyError> {
        if let Some(key) = self.known_verifying_key(kid) {
            return Ok(Some(key));
        }
        let mut read_at = self.cache.verifying_read_at.lock().await;
        // Read by a request that held the lock before this one.
        if let Some(key) = self.known_verifying_key(kid) {
            return Ok(Some(key));
        }
        if read_at.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REREAD) {
            return Ok(None);
        }
        *read_at = Some(std::time::Instant::now());
        let keys = self.store.signing_keys().await?;
        let mut decoded = HashMap::new();
        for stored in keys {
            let Some(algorithm) = SigningAlgorithm::parse(&stored.algorithm) else {
                continue;
            };
            let Ok(jwk) = serde_json::from_str::<Jwk>(&stored.public_jwk) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                let algorithm = algorithm.jws();
                decoded.insert(stored.kid, Arc::new(VerifyingKey { algorithm, key }));
            }
        }
        let found = decoded.get(kid).cloned();
        if let Ok(mut verifying) = self.cache.verifying.write() {
            *verifying = decoded;
        }
        Ok(found)
    }

    fn known_verifying_key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.cache.verifying.read().ok()?.get(kid).cloned()
    }

    /// The JSON Web Key Set: every key that is current or retired but still needed.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        let mut keys = self.store.signing_keys().await?;
        if !keys.iter().any(|k| k.retired_at.is_none()) {
            self.rotate().await?;
            keys = self.store.signing_keys().await?;
        }
        let published: Vec<Value> = keys
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(serde_json::json!({ "keys": published }))
    }
}
