//! Log lines a LAN neighbour can cause, at most one a minute per address and kind: a flood of
//! refused logins or connections must not write a line each (journald's rate limit would then
//! drop everything, warnings included, and the flash wears). The lines skipped are counted and
//! reported with the next one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One line per address and kind per this long.
pub const EVERY: Duration = Duration::from_secs(60);
/// Most (address, kind) pairs remembered; past that the table starts again.
const MAX_KEYS: usize = 4096;

/// (address, kind) → (when last written, lines left out since).
type Seen = HashMap<(IpAddr, &'static str), (Instant, u64)>;

#[derive(Default)]
pub struct LogRate {
    seen: Mutex<Seen>,
}

impl LogRate {
    /// `Some(skipped)` when a line about `kind` from `ip` may be written now (`skipped` lines
    /// were left out since the last one); `None` when this one is to be left out.
    pub fn allow(&self, ip: IpAddr, kind: &'static str) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_KEYS && !seen.contains_key(&(ip, kind)) {
            seen.retain(|_, (at, _)| at.elapsed() < EVERY);
            if seen.len() >= MAX_KEYS {
                seen.clear();
            }
        }
        match seen.get_mut(&(ip, kind)) {
            Some((at, skipped)) if at.elapsed() < EVERY => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                *at = Instant::now();
                Some(std::mem::take(skipped))
            }
            None => {
                seen.insert((ip, kind), (Instant::now(), 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_per_address_and_kind_with_the_count_skipped() {
        let r = LogRate::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert_eq!(r.allow(a, "login"), Some(0));
        for _ in 0..5 {
            assert_eq!(r.allow(a, "login"), None);
        }
        assert_eq!(r.allow(a, "refused"), Some(0), "another kind");
        assert_eq!(r.allow(b, "login"), Some(0), "another address");
        // a minute later: one line, saying how many were left out
        r.seen.lock().unwrap().get_mut(&(a, "login")).unwrap().0 -= EVERY;
        assert_eq!(r.allow(a, "login"), Some(5));
        assert_eq!(r.allow(a, "login"), None);
    }
}
