//! Password hashing with argon2id (OWASP parameters: the `argon2` crate's defaults), run on the
//! blocking pool and bounded, so a burst of sign-ins cannot starve the async runtime or exhaust
//! memory (each hash holds 19 MiB).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};
use tokio::sync::{OnceCell, Semaphore};

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of no one's password, verified when the email is unknown so that sign-in takes
    /// the same time whether or not the account exists (SECURITY S26).
    dummy: OnceCell<String>,
}

impl PasswordHasher {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores * 2)),
            dummy: OnceCell::new(),
        }
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || {
            let salt = mcpauth_core::secret::random_bytes::<16>();
            Argon2::default()
                .hash_password_with_salt(password.as_bytes(), &salt)
                .map(|h: PasswordHash| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Prepares the stand-in hash for unknown accounts, so that not even the first sign-in
    /// with an unknown email takes longer than one with a known email.
    pub async fn warm_up(&self) {
        let _ = self.dummy_hash().await;
    }

    async fn dummy_hash(&self) -> Result<&String, String> {
        self.dummy
            .get_or_try_init(|| self.hash("mcpauth-dummy-password".to_owned()))
            .await
    }

    /// True when `password` matches `hash`; with no hash, spends the same time and says no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        match hash {
            Some(hash) => self.check(password, hash).await,
            None => {
                if let Ok(dummy) = self.dummy_hash().await {
                    self.check(password, dummy.clone()).await;
                }
                false
            }
        }
    }

    async fn check(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }
}
