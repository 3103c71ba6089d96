//! The systemd watchdog, gated on real progress. With `WATCHDOG_USEC` set (and
//! `WATCHDOG_PID`, if set, naming this process), a task sends `WATCHDOG=1` every half
//! interval, but only while the service works:
//!
//! - the async runtime answers: the ping comes from a task on it, so a blocked runtime
//!   misses its pings;
//! - the store answers a ping within the interval;
//! - every running recording whose camera is live wrote a fragment within [`STALL`] (a disk
//!   that hangs, or a recorder stuck, stops the pings).
//!
//! systemd then restarts vigia (`Restart=on-failure`), whose crash recovery closes the files.
//! The same task keeps `STATUS=` current: "12 live, 3 recording, 71 % disk free".

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use futures_util::future::BoxFuture;

use super::notify::Notifier;
use super::tasks::Tasks;

/// How long a recording of a live camera may go without writing a fragment (fragments are
/// written about every second).
pub const STALL: Duration = Duration::from_secs(10);

/// The watchdog interval systemd asked for, if it asked this process.
pub fn interval_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().filter(|p| !p.is_empty()) {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the watchdog asks of the service (the wiring implements it over the store, the
/// streams and the recordings).
pub trait Health: Send + Sync + 'static {
    /// Why the service is not healthy now, if it is not: the store does not answer within
    /// `store_timeout`, or a recording of a live camera wrote nothing for [`STALL`].
    fn check(&self, store_timeout: Duration) -> BoxFuture<'_, Result<(), String>>;
    /// "12 live, 3 recording, 71 % disk free".
    fn status(&self) -> String;
}

/// ", 71 % disk free" for the file system holding `dir` (empty when it cannot be read).
pub fn disk_free_note(dir: &std::path::Path) -> String {
    super::host::disk_space(dir)
        .filter(|(total, _)| *total > 0)
        .map(|(total, free)| format!(", {:.0} % disk free", free as f64 * 100.0 / total as f64))
        .unwrap_or_default()
}

/// Runs the watchdog (when systemd asked for one) and the status updates until the process
/// ends.
pub fn spawn(health: Arc<dyn Health>, notifier: Arc<Notifier>, tasks: &Tasks) {
    let watchdog = interval_from_env();
    if !notifier.enabled() {
        return;
    }
    let every = watchdog.map_or(Duration::from_secs(5), |w| {
        (w / 2).min(Duration::from_secs(5))
    });
    if let Some(w) = watchdog {
        info!(interval_ms = w.as_millis() as u64, "systemd watchdog on");
    }
    tasks.spawn("watchdog", async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = String::new();
        let mut failing = false;
        loop {
            tick.tick().await;
            let verdict = health.check(every).await;
            let mut status = health.status();
            match &verdict {
                Ok(()) => {
                    if watchdog.is_some() {
                        notifier.watchdog();
                    }
                    if failing {
                        info!("healthy again: watchdog pings resume");
                    }
                    failing = false;
                }
                Err(why) => {
                    if !failing {
                        warn!(reason = %why, "unhealthy: watchdog pings withheld");
                    }
                    failing = true;
                    status = format!("unhealthy: {why}");
                }
            }
            if status != last_status {
                notifier.status(&status);
                last_status = status;
            }
        }
    });
}
