//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing costs tens of milliseconds and 19 MiB, so it runs on the blocking pool behind a
//! semaphore (one hash per core at a time: a login storm cannot exhaust memory). A login for an
//! unknown user verifies against a dummy hash, so it takes as long as one for a real user.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Shortest password accepted at registration.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bounds hashing work per request).
pub const MAX_PASSWORD_LEN: usize = 256;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &[u8]) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
}

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    dummy_hash: Arc<String>,
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub fn new() -> Result<Passwords> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Passwords {
            dummy_hash: Arc::new(hash_now(b"vigia dummy password for timing")?),
            permits: Arc::new(Semaphore::new(cores)),
        })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::internal("password hasher closed"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::internal(format!("password task failed: {e}")))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &str) -> Result<String> {
        let pw = password.as_bytes().to_vec();
        self.run(move || hash_now(&pw)).await?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is none, so that
    /// the time taken does not tell whether the user exists. Comparison is constant-time.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_str().to_string());
        let pw = password.as_bytes().to_vec();
        let ok = self
            .run(move || match PasswordHash::new(&hash) {
                Ok(parsed) => argon2().verify_password(&pw, &parsed).is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let p = Passwords::new().unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(h.clone())).await.unwrap());
        assert!(!p.verify("wrong horse", Some(h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(!p.verify("x", Some("not a hash".into())).await.unwrap());
    }
}
