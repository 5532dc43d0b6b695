//! Password hashing with argon2id (OWASP parameters: the `argon2` crate's defaults), run on the
//! blocking pool and bounded, so a burst of sign-ins cannot starve the async runtime or exhaust
//! memory.
//!
//! Each hash works in 19 MiB of memory, held only while it runs: an idle server keeps none (it
//! was most of an idle server's resident memory). A plain 19 MiB allocation per hash made glibc
//! raise its mmap threshold and then keep the freed buffers in per-thread arenas, so the process
//! grew by hundreds of MiB under a sign-in load without any leak (see BENCHMARKS.md, "Soak").
//! The buffer is therefore reserved with room for [`BUFFER_RESERVE`] bytes, above glibc's largest
//! dynamic mmap threshold (32 MiB): glibc maps it afresh, only the pages the hash touches become
//! resident, and freeing it unmaps it, without moving the threshold. It is zeroed before it is
//! freed, so no password-derived state outlives its hash whatever the allocator.

use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of no one's password, verified when the email is unknown so that sign-in takes
    /// the same time whether or not the account exists (SECURITY S26).
    dummy: OnceCell<String>,
}

/// The bytes reserved for a hash's working memory: above glibc's largest dynamic mmap threshold
/// (`DEFAULT_MMAP_THRESHOLD_MAX`, 32 MiB on 64-bit), so that the buffer is always a mapping of
/// its own, returned to the system when freed.
const BUFFER_RESERVE: usize = 33 << 20;

/// Runs one argon2 computation in a buffer big enough for `params`, zeroed and freed after.
fn with_buffer<T>(params: &Params, compute: impl FnOnce(&mut [Block]) -> T) -> T {
    let needed = params.block_count();
    let mut buffer = Vec::with_capacity(needed.max(BUFFER_RESERVE / size_of::<Block>()));
    buffer.resize(needed, Block::default());
    let result = compute(&mut buffer);
    buffer.fill(Block::default());
    result
}

/// The PHC string of `password` under a fresh salt, with the default argon2id parameters.
fn hash_in(password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let salt = mcpauth_core::secret::random_bytes::<16>();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_buffer(&params, |blocks| {
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
fn verify_in(password: &[u8], hash: &str) -> bool {
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
    let computed = with_buffer(&params, |blocks| {
        argon.hash_password_into_with_memory(password, salt, &mut out, blocks)
    });
    computed.is_ok() && Output::new(&out).is_ok_and(|output| output == *expected)
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
        tokio::task::spawn_blocking(move || hash_in(password.as_bytes()))
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
        tokio::task::spawn_blocking(move || verify_in(password.as_bytes(), &hash))
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
        let ours = hash_in(b"correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // A hash the crate made with its own working memory verifies here.
        let theirs = Argon2::default()
            .hash_password_with_salt(b"battery staple", &[7u8; 16])
            .unwrap()
            .to_string();
        assert!(verify_in(b"battery staple", &theirs));
        assert!(!verify_in(b"battery stapler", &theirs));
        assert!(!verify_in(b"correct horse", &theirs));
        assert!(verify_in(b"correct horse", &ours));
    }

    /// The resident set of this process, in KiB.
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A hash's 19 MiB go back to the system when it ends, also after hashes ran on several
    /// threads at once (glibc kept such buffers in its arenas).
    #[test]
    fn working_memory_is_returned_after_each_hash() {
        hash_in(b"warm up").unwrap();
        let before = resident_kib();
        for _ in 0..2 {
            let threads: Vec<_> = (0..3)
                .map(|n| std::thread::spawn(move || hash_in(format!("pw{n}").as_bytes())))
                .collect();
            for thread in threads {
                thread.join().unwrap().unwrap();
            }
        }
        let after = resident_kib();
        assert!(
            after < before + 8 * 1024,
            "resident {before} KiB before, {after} KiB after six hashes"
        );
    }

    #[test]
    fn other_parameters_and_malformed_hashes() {
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(b"pw", &[1u8; 16])
        .unwrap()
        .to_string();
        assert!(verify_in(b"pw", &small));
        assert!(!verify_in(b"px", &small));
        for bad in ["", "plain", "$argon2id$v=19$m=19456,t=2,p=1$", "$bcrypt$x"] {
            assert!(!verify_in(b"pw", bad), "{bad}");
        }
    }
}
