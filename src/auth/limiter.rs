//! Login throttling, per address and per account, decided *before* the password is hashed.
//!
//! - **Per address**: [`MAX_FAILURES`] failed logins from one address within [`WINDOW_SECS`]
//!   lock it out (429 with `Retry-After` until the oldest failure ages out). An attempt still
//!   being hashed counts as a failure until it is known, so a hundred guesses sent at once get
//!   at most [`MAX_FAILURES`] answers. A success clears only *that username's* failures from
//!   that address, so logging into a second account does not wipe the guesses at the first.
//! - **Per account**: after [`ACCOUNT_FAILURES`] failures for one username within the window,
//!   from any addresses, that username is tried at most once per [`ACCOUNT_INTERVAL_SECS`]
//!   (a distributed guess is slowed to ~700 a hour instead of as fast as the box hashes). It
//!   slows and never blocks, and addresses that logged into the account before
//!   ([`TRUSTED_PER_ACCOUNT`] most recent) pass it, so an attacker cannot lock the admin out.
//!
//! Memory is bounded: at most [`MAX_ENTRIES`] addresses and usernames each are tracked, the
//! stalest dropped first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW_SECS: i64 = 300;
/// Failures for one username (any address) before its attempts are spaced out.
pub const ACCOUNT_FAILURES: usize = 10;
/// The spacing of attempts at a username under attack.
pub const ACCOUNT_INTERVAL_SECS: i64 = 5;
/// Addresses remembered per account as having logged in (they pass the account limit).
const TRUSTED_PER_ACCOUNT: usize = 16;
const MAX_ENTRIES: usize = 10_000;
/// Usernames are keyed by at most this many bytes.
const MAX_KEY: usize = 64;

#[derive(Default)]
struct Address {
    /// Recent failures and the username each was for.
    failures: VecDeque<(DateTime<Utc>, String)>,
    /// Attempts being hashed now.
    in_flight: usize,
}

#[derive(Default)]
struct Account {
    failures: VecDeque<DateTime<Utc>>,
    /// When the last attempt past the account limit was let through.
    last_admitted: Option<DateTime<Utc>>,
    trusted: VecDeque<IpAddr>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Address>,
    accounts: HashMap<String, Account>,
}

/// Why an attempt is refused, and for how many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures from this address.
    Address(u64),
    /// This username is under attack; the next attempt is allowed in this many seconds.
    Account(u64),
}

pub struct LoginLimiter {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// A login attempt admitted for hashing. Say how it ended with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped without either (an error), it only frees its place.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    ip: IpAddr,
    user: String,
    open: bool,
}

fn key(username: &str) -> String {
    let mut end = username.len().min(MAX_KEY);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    username[..end].to_string()
}

/// Makes room for one more key in `map`, dropping entries that say nothing any more, then the
/// one `stalest` picks.
fn bound<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    new: &K,
    idle: impl Fn(&V) -> bool,
    stalest: impl Fn(&V) -> Option<DateTime<Utc>>,
) {
    if map.len() < MAX_ENTRIES || map.contains_key(new) {
        return;
    }
    map.retain(|_, v| !idle(v));
    if map.len() >= MAX_ENTRIES {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| stalest(v))
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
}

impl LoginLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        LoginLimiter {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits an attempt by `ip` at `username`, reserving its place, or says why not.
    pub fn begin(&self, ip: IpAddr, username: &str) -> Result<Attempt<'_>, Refused> {
        let now = self.clock.now();
        let window = Duration::seconds(WINDOW_SECS);
        let user = key(username);
        let mut st = self.state();
        let State {
            addresses,
            accounts,
        } = &mut *st;

        if let Some(a) = addresses.get_mut(&ip) {
            while a.failures.front().is_some_and(|(t, _)| *t + window <= now) {
                a.failures.pop_front();
            }
            if a.failures.len() + a.in_flight >= MAX_FAILURES {
                let wait = a
                    .failures
                    .front()
                    .map_or(1, |(t, _)| (*t + window - now).num_seconds());
                return Err(Refused::Address(wait.max(1) as u64));
            }
        }
        if let Some(acc) = accounts.get_mut(&user) {
            while acc.failures.front().is_some_and(|t| *t + window <= now) {
                acc.failures.pop_front();
            }
            if acc.failures.len() >= ACCOUNT_FAILURES && !acc.trusted.contains(&ip) {
                let interval = Duration::seconds(ACCOUNT_INTERVAL_SECS);
                if let Some(last) = acc.last_admitted.filter(|l| *l + interval > now) {
                    let wait = (last + interval - now).num_seconds().max(1);
                    return Err(Refused::Account(wait as u64));
                }
                acc.last_admitted = Some(now);
            }
        }
        bound(
            addresses,
            &ip,
            |a| a.in_flight == 0 && a.failures.back().is_none_or(|(t, _)| *t + window <= now),
            |a| a.failures.back().map(|(t, _)| *t),
        );
        addresses.entry(ip).or_default().in_flight += 1;
        Ok(Attempt {
            limiter: self,
            ip,
            user,
            open: true,
        })
    }

    /// Ends `attempt`'s reservation; records a failure, or a success for its username.
    fn end(&self, attempt: &mut Attempt<'_>, outcome: Option<bool>) {
        if !std::mem::replace(&mut attempt.open, false) {
            return;
        }
        let now = self.clock.now();
        let window = Duration::seconds(WINDOW_SECS);
        let mut st = self.state();
        let State {
            addresses,
            accounts,
        } = &mut *st;
        if let Some(a) = addresses.get_mut(&attempt.ip) {
            a.in_flight = a.in_flight.saturating_sub(1);
            match outcome {
                Some(false) => {
                    a.failures.push_back((now, attempt.user.clone()));
                    while a.failures.len() > MAX_FAILURES {
                        a.failures.pop_front();
                    }
                }
                Some(true) => a.failures.retain(|(_, u)| *u != attempt.user),
                None => {}
            }
        }
        let Some(ok) = outcome else { return };
        bound(
            accounts,
            &attempt.user,
            |acc| acc.failures.back().is_none_or(|t| *t + window <= now) && acc.trusted.is_empty(),
            |acc| acc.failures.back().copied(),
        );
        let acc = accounts.entry(attempt.user.clone()).or_default();
        if ok {
            acc.trusted.retain(|i| *i != attempt.ip);
            acc.trusted.push_back(attempt.ip);
            while acc.trusted.len() > TRUSTED_PER_ACCOUNT {
                acc.trusted.pop_front();
            }
        } else {
            acc.failures.push_back(now);
            while acc.failures.len() > 4 * ACCOUNT_FAILURES {
                acc.failures.pop_front();
            }
        }
    }
}

impl Attempt<'_> {
    /// Wrong password (or unknown user).
    pub fn failed(mut self) {
        self.limiter.end(&mut self, Some(false));
    }

    /// Logged in: clears this username's failures from this address.
    pub fn succeeded(mut self) {
        self.limiter.end(&mut self, Some(true));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let limiter = self.limiter;
        limiter.end(self, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn setup() -> (Arc<ManualClock>, LoginLimiter) {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        (clock.clone(), LoginLimiter::new(clock))
    }

    #[test]
    fn locks_after_ten_failures_and_unlocks_after_the_window() {
        let (clock, l) = setup();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            l.begin(ip, "admin").unwrap().failed();
            clock.advance(Duration::seconds(1));
        }
        let Err(Refused::Address(wait)) = l.begin(ip, "admin") else {
            panic!("not locked")
        };
        assert!(wait > 280 && wait <= 300, "{wait}");
        assert!(l.begin(other, "bob").is_ok());
        clock.advance(Duration::seconds(wait as i64));
        assert!(l.begin(ip, "admin").is_ok(), "oldest failure aged out");
    }

    #[test]
    fn attempts_being_hashed_count_and_an_error_frees_them() {
        let (_, l) = setup();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let held: Vec<_> = (0..MAX_FAILURES)
            .map(|_| l.begin(ip, "admin").unwrap())
            .collect();
        assert!(matches!(l.begin(ip, "admin"), Err(Refused::Address(_))));
        drop(held); // ended by an error: neither failure nor success
        assert!(l.begin(ip, "admin").is_ok());
    }

    #[test]
    fn a_success_clears_only_its_own_usernames_failures() {
        let (_, l) = setup();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            l.begin(ip, "admin").unwrap().failed();
        }
        l.begin(ip, "bob").unwrap().succeeded();
        l.begin(ip, "admin").unwrap().failed();
        assert!(matches!(l.begin(ip, "admin"), Err(Refused::Address(_))));
    }

    #[test]
    fn a_guessed_account_is_slowed_not_blocked_and_known_addresses_pass() {
        let (clock, l) = setup();
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        l.begin(home, "admin").unwrap().succeeded();
        // ten addresses guess once each
        for i in 0..ACCOUNT_FAILURES {
            let ip: IpAddr = format!("127.0.1.{i}").parse().unwrap();
            l.begin(ip, "admin").unwrap().failed();
        }
        let fresh = |n: u8| -> IpAddr { format!("127.0.2.{n}").parse().unwrap() };
        l.begin(fresh(1), "admin").unwrap().failed();
        assert_eq!(
            l.begin(fresh(2), "admin").err(),
            Some(Refused::Account(ACCOUNT_INTERVAL_SECS as u64))
        );
        assert!(l.begin(home, "admin").is_ok(), "a known address passes");
        assert!(
            l.begin(fresh(3), "bob").is_ok(),
            "other accounts are not slowed"
        );
        clock.advance(Duration::seconds(ACCOUNT_INTERVAL_SECS));
        assert!(l.begin(fresh(4), "admin").is_ok(), "slowed, not blocked");
    }

    #[test]
    fn memory_stays_bounded() {
        let (_, l) = setup();
        for i in 0..(MAX_ENTRIES + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            l.begin(ip, &format!("user{i}")).unwrap().failed();
        }
        let st = l.state();
        assert!(st.addresses.len() <= MAX_ENTRIES);
        assert!(st.accounts.len() <= MAX_ENTRIES);
    }
}
