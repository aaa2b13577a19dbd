//! Password hashing (argon2id) on a bounded pool.
//!
//! argon2 is memory-hard by design: each hash fills `memory_kib` of memory (19 MiB by default).
//! Run unbounded on the blocking pool, a burst of registrations or logins allocated one such
//! buffer per concurrent request, and the allocator kept them: 50 concurrent registrations left the
//! process at several GiB. Here at most `workers` hashes run at once (one per core; more cannot
//! finish sooner), each on a buffer that is allocated once and then reused, so the memory that
//! hashing holds is `workers × memory_kib` whatever the load. Requests beyond that wait their turn,
//! up to a bound, then get `503 server_busy`.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::store::StoreError;

/// How long a request waits for a free hashing worker before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(10);

pub struct PasswordHasher {
    params: Params,
    permits: Semaphore,
    /// Buffers not in use; at most one per worker ever exists.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PasswordHasher {
    /// `workers`: how many hashes may run at once (0 means one per core). Parameters argon2
    /// refuses (the configuration checks them first) fall back to argon2's defaults.
    pub fn new(memory_kib: u32, iterations: u32, workers: usize) -> Self {
        let params = Params::new(memory_kib, iterations, 1, None).unwrap_or_else(|error| {
            tracing::error!(%error, "invalid argon2 parameters; using argon2's defaults");
            Params::default()
        });
        let workers = if workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { workers };
        Self { params, permits: Semaphore::new(workers), buffers: Arc::default() }
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`) of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> DomainResult<String> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move |memory| {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|error| format!("salt: {error}"))?;
            let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, memory)
                .map_err(|error| format!("argon2: {error}"))?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(|error| format!("params: {error}"))?,
                salt: Some(salt.as_salt()),
                hash: Some(Output::new(&out).map_err(|error| format!("output: {error}"))?),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Whether `password` matches the PHC string `phc` (hashed with any argon2 parameters).
    pub async fn verify(&self, password: &str, phc: &str) -> DomainResult<bool> {
        let password = password.to_owned();
        let phc = phc.to_owned();
        self.run(move |memory| Ok(matches(&password, &phc, memory))).await
    }

    /// Runs `work` on the blocking pool with a reusable buffer of the configured size, once a
    /// worker is free.
    async fn run<T, F>(&self, work: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vec<Block>) -> Result<T, String> + Send + 'static,
    {
        let _permit = tokio::time::timeout(MAX_WAIT, self.permits.acquire())
            .await
            .map_err(|_| {
                DomainError::unavailable(ErrorCode::ServerBusy, "too many sign-ins at once; try again shortly")
            })?
            .map_err(|_| internal("hashing pool closed".into()))?;
        let buffers = self.buffers.clone();
        let blocks = self.params.block_count();
        tokio::task::spawn_blocking(move || {
            let mut memory = buffers.lock().pop().unwrap_or_else(|| vec![Block::default(); blocks]);
            let result = work(&mut memory);
            // A buffer grown for an old hash with a larger memory cost is not kept.
            if memory.len() == blocks {
                buffers.lock().push(memory);
            }
            result
        })
        .await
        .map_err(|error| internal(format!("hashing task: {error}")))?
        .map_err(internal)
    }
}

/// Checks `password` against `phc`, in constant time over the hash bytes.
fn matches(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(expected), Ok(algorithm), Ok(params)) =
        (parsed.hash, Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed))
    else {
        return false;
    };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or(Version::V0x13);
    let Some(salt) = parsed.salt else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt_bytes,
        &mut out,
        &mut memory[..],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|actual| actual == expected)
}

fn internal(message: String) -> DomainError {
    DomainError::Store(StoreError::Backend(message))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[tokio::test]
    async fn hashes_verify_here_and_with_the_reference_implementation() {
        let hasher = PasswordHasher::new(256, 1, 2);
        let phc = hasher.hash("correct horse").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{phc}");
        assert!(hasher.verify("correct horse", &phc).await.expect("verify"));
        assert!(!hasher.verify("wrong horse", &phc).await.expect("verify"));
        let parsed = PasswordHash::new(&phc).expect("PHC string");
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
    }

    #[tokio::test]
    async fn verifies_hashes_made_with_other_parameters() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let params = Params::new(512, 2, 1, None).expect("params");
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"hunter22", &salt)
            .expect("hash")
            .to_string();
        let hasher = PasswordHasher::new(256, 1, 1);
        assert!(hasher.verify("hunter22", &old).await.expect("verify"));
        assert!(!hasher.verify("hunter23", &old).await.expect("verify"));
        assert!(!hasher.verify("hunter22", "not a hash").await.expect("verify"));
    }

    #[tokio::test]
    async fn at_most_workers_buffers_are_ever_allocated() {
        let hasher = Arc::new(PasswordHasher::new(256, 1, 2));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("password {i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("hash");
        }
        assert!(hasher.buffers.lock().len() <= 2, "buffers kept: {}", hasher.buffers.lock().len());
    }
}
