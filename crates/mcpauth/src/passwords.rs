//! Password hashing with argon2id (OWASP parameters: the `argon2` crate's defaults), run on the
//! blocking pool and bounded, so a burst of sign-ins cannot starve the async runtime or exhaust
//! memory.
//!
//! Each hash works in 19 MiB of memory. Those buffers are kept and reused, at most one per
//! concurrent hash: allocating 19 MiB per sign-in makes glibc raise its mmap threshold and then
//! keep the freed buffers in per-thread arenas, so the process grew by hundreds of MiB under a
//! sign-in load without any leak (see BENCHMARKS.md, "Soak"). A buffer is zeroed before it goes
//! back to the pool, so no password-derived state outlives its hash.

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Working memory of finished hashes, for the next ones.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of no one's password, verified when the email is unknown so that sign-in takes
    /// the same time whether or not the account exists (SECURITY S26).
    dummy: OnceCell<String>,
}

/// Runs one argon2 computation in a pooled buffer big enough for `params`.
fn with_buffer<T>(
    buffers: &Mutex<Vec<Vec<Block>>>,
    params: &Params,
    compute: impl FnOnce(&mut [Block]) -> T,
) -> T {
    let needed = params.block_count();
    let pooled = buffers.lock().ok().and_then(|mut pool| pool.pop());
    let mut buffer = match pooled {
        Some(buffer) if buffer.len() >= needed => buffer,
        _ => vec![Block::default(); needed],
    };
    let result = compute(&mut buffer);
    buffer.fill(Block::default());
    if let Ok(mut pool) = buffers.lock() {
        pool.push(buffer);
    }
    result
}

/// The PHC string of `password` under a fresh salt, with the default argon2id parameters.
fn hash_in(buffers: &Mutex<Vec<Vec<Block>>>, password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let salt = mcpauth_core::secret::random_bytes::<16>();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_buffer(buffers, &params, |blocks| {
        argon.hash_password_into_with_memory(password, &salt, &mut out, blocks)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// True when `password` matches the PHC string `hash` (any argon2 variant and parameters it
/// names). The outputs are compared in constant time (`Output`'s equality).
fn verify_in(buffers: &Mutex<Vec<Vec<Block>>>, password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = with_buffer(buffers, &params, |blocks| {
        argon.hash_password_into_with_memory(password, salt, &mut out, blocks)
    });
    computed.is_ok() && Output::new(&out).is_ok_and(|output| output == *expected)
}

impl PasswordHasher {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores * 2)),
            buffers: Arc::new(Mutex::new(Vec::new())),
            dummy: OnceCell::new(),
        }
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let buffers = self.buffers.clone();
        tokio::task::spawn_blocking(move || hash_in(&buffers, password.as_bytes()))
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
        let buffers = self.buffers.clone();
        tokio::task::spawn_blocking(move || verify_in(&buffers, password.as_bytes(), &hash))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[test]
    fn hashes_verify_with_the_argon2_crate_and_back() {
        let pool = Mutex::new(Vec::new());
        let ours = hash_in(&pool, b"correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // A hash the crate made (as stored before the buffers were pooled) verifies here.
        let theirs = Argon2::default()
            .hash_password_with_salt(b"battery staple", &[7u8; 16])
            .unwrap()
            .to_string();
        assert!(verify_in(&pool, b"battery staple", &theirs));
        assert!(!verify_in(&pool, b"battery stapler", &theirs));
        assert!(!verify_in(&pool, b"correct horse", &theirs));
        assert!(verify_in(&pool, b"correct horse", &ours));
        // The buffer went back to the pool, zeroed, and is reused.
        assert_eq!(pool.lock().unwrap().len(), 1);
    }

    #[test]
    fn other_parameters_and_malformed_hashes() {
        let pool = Mutex::new(Vec::new());
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(b"pw", &[1u8; 16])
        .unwrap()
        .to_string();
        assert!(verify_in(&pool, b"pw", &small));
        assert!(!verify_in(&pool, b"px", &small));
        for bad in ["", "plain", "$argon2id$v=19$m=19456,t=2,p=1$", "$bcrypt$x"] {
            assert!(!verify_in(&pool, b"pw", bad), "{bad}");
        }
    }
}
