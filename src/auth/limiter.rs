//! Login throttling: after `MAX_FAILURES` failed logins from one client address within
//! `WINDOW`, further attempts from it get 429 with `Retry-After` until the oldest failure ages
//! out. Memory is bounded: at most `MAX_CLIENTS` addresses are tracked, oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW_SECS: i64 = 300;
const MAX_CLIENTS: usize = 10_000;

pub struct LoginLimiter {
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<IpAddr, VecDeque<DateTime<Utc>>>>,
}

impl LoginLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        LoginLimiter {
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds)` to wait when `ip` is locked out now.
    pub fn check(&self, ip: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let q = map.get_mut(&ip)?;
        while q
            .front()
            .is_some_and(|t| *t + Duration::seconds(WINDOW_SECS) <= now)
        {
            q.pop_front();
        }
        if q.len() < MAX_FAILURES {
            if q.is_empty() {
                map.remove(&ip);
            }
            return None;
        }
        let oldest = *q.front()?;
        let wait = (oldest + Duration::seconds(WINDOW_SECS) - now).num_seconds();
        Some(wait.max(1) as u64)
    }

    pub fn failed(&self, ip: IpAddr) {
        let now = self.clock.now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS && !map.contains_key(&ip) {
            let cutoff = now - Duration::seconds(WINDOW_SECS);
            map.retain(|_, q| q.back().is_some_and(|t| *t > cutoff));
            if map.len() >= MAX_CLIENTS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let q = map.entry(ip).or_default();
        q.push_back(now);
        while q.len() > MAX_FAILURES {
            q.pop_front();
        }
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn locks_after_ten_failures_and_unlocks_after_the_window() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let l = LoginLimiter::new(clock.clone());
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(l.check(ip), None);
            l.failed(ip);
            clock.advance(Duration::seconds(1));
        }
        let wait = l.check(ip).expect("locked");
        assert!(wait > 280 && wait <= 300, "{wait}");
        assert_eq!(l.check(other), None);
        clock.advance(Duration::seconds(wait as i64));
        assert_eq!(l.check(ip), None, "oldest failure aged out");
        l.succeeded(ip);
        assert_eq!(l.check(ip), None);
    }
}
