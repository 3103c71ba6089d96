//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing costs tens of milliseconds and 19 MiB, so it runs on its own threads, one per core,
//! at a lower CPU priority (nice 10), with a short waiting line (then 503 at once): a login
//! storm can neither exhaust memory nor take CPU from video and the API. The 19 MiB are
//! mapped from the kernel for each hash and unmapped after it ([`Scratch`]), so they never sit
//! in the allocator's free lists, whichever allocator runs. A login for an
//! unknown user verifies against a dummy hash, so it takes as long as one for a real user.
//!
//! Hashes imported from the old Flask backend are bcrypt (`$2a$`, `$2b$`, `$2y$`): they verify
//! here too ([`is_legacy`] tells them apart), and a login replaces one with argon2id.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Shortest password accepted at registration.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bounds hashing work per request).
pub const MAX_PASSWORD_LEN: usize = 256;
/// Most memory a stored hash may ask for (KiB): a hash written elsewhere with a huge `m` would
/// otherwise make every login map that much.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

fn owasp() -> Result<Params> {
    Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))
}

/// argon2's working memory: anonymous pages from `mmap`, returned by `munmap` on drop.
struct Scratch {
    blocks: NonNull<Block>,
    len: usize,
}

impl Scratch {
    fn new(len: usize) -> Result<Scratch> {
        let bytes = len * std::mem::size_of::<Block>();
        // SAFETY: an anonymous private mapping of `bytes`; checked for failure below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || len == 0 {
            return Err(Error::failed(
                format!("cannot map {bytes} bytes for password hashing"),
                std::io::Error::last_os_error(),
            ));
        }
        // page-aligned, so aligned for `Block` (64)
        let blocks = NonNull::new(p.cast::<Block>())
            .ok_or_else(|| Error::internal("mmap returned a null mapping"))?;
        Ok(Scratch { blocks, len })
    }
}

impl AsMut<[Block]> for Scratch {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: the mapping holds `len` blocks, zero-filled by the kernel (a valid `Block`:
        // it is plain `u64`s), and lives as long as `self`, which is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing borrows it any more.
        unsafe {
            libc::munmap(
                self.blocks.as_ptr().cast(),
                self.len * std::mem::size_of::<Block>(),
            );
        }
    }
}

/// The argon2 output of `password` and `salt` under `argon2`'s parameters, `len` bytes long.
fn derive(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    len: usize,
) -> Result<Output> {
    let failed =
        |e: &dyn std::fmt::Display| Error::internal(format!("password hashing failed: {e}"));
    let scratch = Scratch::new(params.block_count())?;
    let mut out = vec![0u8; len];
    argon2
        .hash_password_into_with_memory(password, salt, &mut out, scratch)
        .map_err(|e| failed(&e))?;
    Output::new(&out).map_err(|e| failed(&e))
}

fn hash_now(password: &[u8]) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut raw)
        .map_err(|e| Error::internal(format!("password salt: {e}")))?;
    let params = owasp()?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = derive(
        &argon2,
        &params,
        password,
        salt_bytes,
        Params::DEFAULT_OUTPUT_LEN,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// Highest bcrypt cost a stored hash may ask for (2^16 rounds, ~5 s on a small ARM core): a
/// hash written elsewhere with cost 31 would otherwise take a hashing thread for days.
const MAX_BCRYPT_COST: u32 = 16;

/// Whether `stored` is a bcrypt hash (the old backend's), to be replaced by argon2id once the
/// password is known.
pub fn is_legacy(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Whether `password` matches the bcrypt hash `stored` (cost up to [`MAX_BCRYPT_COST`];
/// passwords past 72 bytes are cut there, as every bcrypt that made such hashes did). The
/// bcrypt crate compares in constant time.
fn matches_bcrypt(password: &[u8], stored: &str) -> bool {
    let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok());
    matches!(cost, Some(c) if c <= MAX_BCRYPT_COST)
        && bcrypt::verify(password, stored).unwrap_or(false)
}

/// Whether `password` matches the PHC string `stored` (any argon2 variant and version, `m` up
/// to [`MAX_MEMORY_KIB`]) or a bcrypt hash (see [`is_legacy`]). The comparison of the outputs
/// is constant-time.
fn matches(password: &[u8], stored: &str) -> bool {
    if is_legacy(stored) {
        return matches_bcrypt(password, stored);
    }
    let check = || -> Option<bool> {
        let phc = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
        let version = phc
            .version
            .map_or(Some(Version::default()), |v| Version::try_from(v).ok())?;
        let params = Params::try_from(&phc).ok()?;
        if params.m_cost() > MAX_MEMORY_KIB {
            return None;
        }
        let expected = phc.hash?;
        let mut raw = [0u8; 64];
        let salt = phc.salt?.decode_b64(&mut raw).ok()?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let got = derive(&argon2, &params, password, salt, expected.len()).ok()?;
        Some(got == expected)
    };
    check().unwrap_or(false)
}

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    dummy_hash: Arc<String>,
    permits: Arc<Semaphore>,
    /// Requests waiting for a hashing slot, at most `queue`.
    waiting: Arc<AtomicUsize>,
    queue: usize,
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Starts `n` hashing threads at nice 10: when logins and video want the same core, video
/// and the API win (a login storm slows logins, not the box).
fn start_hashers(n: usize) -> Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..n {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name("vigia-hash".into())
            .spawn(move || {
                // SAFETY: setpriority on this thread's own id (Linux threads have their own nice)
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
                }
                loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| Error::failed("cannot start a hashing thread", e))?;
    }
    Ok(tx)
}

/// Hashes that may wait for a slot, per slot: past that, 503 at once (a login flood gets no
/// unbounded queue, memory or latency).
const QUEUE_PER_SLOT: usize = 4;

/// One place in the waiting line, given back when dropped (also when the client leaves).
pub struct Waiting(Arc<AtomicUsize>);

/// A place for one hash (see [`Passwords::admit`]).
pub enum Admission {
    /// A hashing thread is free.
    Slot(tokio::sync::OwnedSemaphorePermit),
    /// In the waiting line.
    Waiting(Waiting),
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    pub fn new() -> Result<Passwords> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Passwords {
            dummy_hash: Arc::new(hash_now(b"vigia dummy password for timing")?),
            permits: Arc::new(Semaphore::new(cores)),
            jobs: Arc::new(Mutex::new(start_hashers(cores)?)),
            waiting: Arc::default(),
            queue: QUEUE_PER_SLOT * cores,
        })
    }

    /// A place for one hash: a free hashing thread, or a place in the short waiting line;
    /// 503 at once when both are full. Taken *before* any other work for a login (the store
    /// read), so a flood is shed before it costs anything.
    pub fn admit(&self) -> Result<Admission> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(Admission::Slot(p));
        }
        let place = Waiting(self.waiting.clone());
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            drop(place);
            return Err(
                Error::unavailable("busy checking other passwords; retry in a moment")
                    .with_retry_after(1),
            );
        }
        Ok(Admission::Waiting(place))
    }

    async fn run<T: Send + 'static>(
        &self,
        admission: Admission,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = match admission {
            Admission::Slot(p) => p,
            Admission::Waiting(place) => {
                let p = self.permits.clone().acquire_owned().await;
                drop(place);
                p.map_err(|_| Error::internal("password hasher closed"))?
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Error::internal("password hasher closed"))?;
        rx.await
            .map_err(|_| Error::internal("password task failed"))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &str) -> Result<String> {
        let pw = password.as_bytes().to_vec();
        self.run(self.admit()?, move || hash_now(&pw)).await?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is none, so that
    /// the time taken does not tell whether the user exists. Comparison is constant-time.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool> {
        self.verify_admitted(self.admit()?, password, hash).await
    }

    /// [`Passwords::verify`] in a place taken earlier with [`Passwords::admit`].
    pub async fn verify_admitted(
        &self,
        admission: Admission,
        password: &str,
        hash: Option<String>,
    ) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_str().to_string());
        let pw = password.as_bytes().to_vec();
        let ok = self.run(admission, move || matches(&pw, &hash)).await?;
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

    /// Hashes from the old backend: bcrypt in its three spellings verify (Python's bcrypt wrote
    /// `$2b$`; `$2a$` and `$2y$` are the same function), a wrong password does not, and a cost
    /// past the bound is refused without hashing.
    #[tokio::test]
    async fn bcrypt_hashes_of_the_old_backend_verify() {
        let p = Passwords::new().unwrap();
        let b = bcrypt::hash_with_result("old password", 4).unwrap();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let h = b.format_for_version(version);
            assert!(is_legacy(&h), "{h}");
            assert!(
                p.verify("old password", Some(h.clone())).await.unwrap(),
                "{h}"
            );
            assert!(!p.verify("old passworD", Some(h)).await.unwrap());
        }
        let costly = bcrypt::hash_with_result("x", 4)
            .unwrap()
            .to_string()
            .replacen("$04$", "$31$", 1);
        let started = std::time::Instant::now();
        assert!(!p.verify("x", Some(costly)).await.unwrap());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(!is_legacy("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
    }

    /// Our mmap-backed hashing and the argon2 crate's own allocating path agree both ways, so
    /// hashes stored before (or by other tools) still verify.
    #[test]
    fn agrees_with_the_argon2_crates_own_hashing() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let ours = hash_now(b"correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        for (alg, m) in [
            (Algorithm::Argon2id, 19 * 1024),
            (Algorithm::Argon2i, 4096),
            (Algorithm::Argon2d, 1024),
        ] {
            let params = Params::new(m, 2, 1, None).unwrap();
            let salt = SaltString::generate(&mut OsRng);
            let theirs = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"battery staple", &salt)
                .unwrap()
                .to_string();
            assert!(matches(b"battery staple", &theirs), "{theirs}");
            assert!(!matches(b"battery stapler", &theirs), "{theirs}");
        }
        // a stored hash asking for more memory than we map is refused, not computed
        let huge = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
        .replace("m=1024", "m=4194304");
        assert!(!matches(b"pw", &huge));
    }
}
