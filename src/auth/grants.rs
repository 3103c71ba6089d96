//! Logins recently checked: what a token resolved to (its verified claims and its session's
//! user), reused for [`TTL`], so a player's every part and playlist reload does not verify a
//! signature and read the store again.
//!
//! Only with the embedded store, where this process is the only writer: every change made
//! through the API (any request that is not `GET`/`HEAD`: logout, deleting a user, changing a
//! role, ...) starts a new epoch, which drops every grant at once, so a revoked login is refused
//! by the very next request. With a database shared by several boxes nothing is cached: a
//! logout on one box must hold on the others at once. Expiry is checked on every use against
//! the injected clock, and [`TTL`] bounds the age of a grant besides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::jwt::Claims;
use crate::store::User;

/// How long a grant is reused without asking the store again.
pub const TTL: Duration = Duration::from_secs(2);
/// Most grants kept; when full the table starts again (a flood of distinct tokens can only
/// cost the store reads the table saves).
const MAX_GRANTS: usize = 4096;

/// What a token resolved to.
#[derive(Clone)]
pub struct Grant {
    pub user: User,
    /// The login token's claims (`None` for a player token).
    pub claims: Option<Claims>,
    expires: i64,
    at: Instant,
    epoch: u64,
}

/// The table of grants, keyed by the token (and what it was checked for).
#[derive(Default)]
pub struct Grants {
    enabled: bool,
    table: Mutex<HashMap<String, Grant>>,
    epoch: AtomicU64,
}

impl Grants {
    /// A table that keeps grants when `enabled` (this process is the store's only writer).
    pub fn new(enabled: bool) -> Grants {
        Grants {
            enabled,
            ..Grants::default()
        }
    }

    /// The current epoch: read it *before* checking a token, and give it to [`Grants::put`], so
    /// a check that raced with a change is never reused.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The grant for `key`, if it is of this epoch, younger than [`TTL`] and its token has not
    /// expired by `now` (Unix seconds).
    pub fn get(&self, key: &str, now: i64) -> Option<Grant> {
        let epoch = self.epoch();
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let g = table.get(key)?;
        (g.epoch == epoch && g.at.elapsed() < TTL && g.expires > now).then(|| g.clone())
    }

    /// Remembers what `key` resolved to, checked in `epoch`; the token expires at `expires`.
    pub fn put(&self, key: String, epoch: u64, user: User, claims: Option<Claims>, expires: i64) {
        if !self.enabled {
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_GRANTS {
            table.clear();
        }
        let at = Instant::now();
        table.insert(
            key,
            Grant {
                user,
                claims,
                expires,
                at,
                epoch,
            },
        );
    }

    /// Something may have changed who may do what: forget every grant.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::tests::user;

    #[test]
    fn a_grant_is_reused_until_a_change_its_age_or_its_expiry() {
        let off = Grants::new(false);
        off.put("tok".into(), off.epoch(), user(), None, 1_000);
        assert!(off.get("tok", 0).is_none(), "a shared store keeps nothing");
        let g = Grants::new(true);
        let e = g.epoch();
        g.put("tok".into(), e, user(), None, 1_000);
        assert_eq!(g.get("tok", 999).map(|g| g.user.id), Some(7));
        assert!(g.get("tok", 1_000).is_none(), "expired token");
        assert!(g.get("other", 0).is_none());
        g.invalidate();
        assert!(g.get("tok", 0).is_none(), "a change drops it");
        // a check that began before the change is not kept
        g.put("tok".into(), e, user(), None, 1_000);
        assert!(g.get("tok", 0).is_none());
        let mut stale = Grant {
            at: Instant::now() - TTL,
            ..g.table.lock().unwrap()["tok"].clone()
        };
        stale.epoch = g.epoch();
        g.table.lock().unwrap().insert("tok".into(), stale);
        assert!(g.get("tok", 0).is_none(), "older than the TTL");
        for i in 0..=MAX_GRANTS {
            g.put(format!("t{i}"), g.epoch(), user(), None, 1_000);
        }
        assert!(g.table.lock().unwrap().len() <= MAX_GRANTS);
    }
}
