//! The process's long-lived background tasks (fleet heartbeat and hand-overs, disk watcher,
//! watchdog, upkeep, recording resumes, the unknown-file report), each spawned with a name
//! and stopped on purpose at shutdown, in the spirit of Moonfire's `base::shutdown`: one stop
//! signal reaches every task, which ends at its next `.await`; shutdown then joins them all
//! within a bound and names any that had to be aborted. Camera sessions and recordings have
//! their own orderly stop (`Streams::stop_all`, `Recordings::stop_all`), run after these, so
//! that nothing starts a recording, beats or deletes a file once shutdown has begun.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub struct Tasks {
    stop: watch::Sender<bool>,
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            stop: watch::channel(false).0,
            running: Mutex::new(Vec::new()),
        }
    }
}

impl Tasks {
    fn running(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, JoinHandle<()>)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Runs `f` until it ends or shutdown begins (then it is dropped at its next `.await`).
    /// Once shutdown has begun, nothing new starts.
    pub fn spawn(&self, name: &'static str, f: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.subscribe();
        let mut running = self.running();
        if *stop.borrow() {
            return;
        }
        running.retain(|(_, h)| !h.is_finished());
        running.push((
            name,
            tokio::spawn(async move {
                tokio::select! {
                    _ = f => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }),
        ));
    }

    /// Tasks still running (finished ones are not counted).
    pub fn count(&self) -> usize {
        self.running()
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .count()
    }

    /// Signals every task to stop and waits for them, at most `limit`; the ones still running
    /// then are aborted and their names returned.
    pub async fn shutdown(&self, limit: Duration) -> Vec<&'static str> {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.running());
        let n = tasks.len();
        let deadline = tokio::time::Instant::now() + limit;
        let mut late = Vec::new();
        for (name, mut h) in tasks {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                h.abort();
                late.push(name);
            }
        }
        if late.is_empty() {
            info!(tasks = n, "background tasks stopped");
        } else {
            warn!(tasks = n, late = ?late, "background tasks aborted after {} ms", limit.as_millis());
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn every_task_stops_at_its_next_await_and_none_starts_after() {
        let t = Tasks::default();
        let ticks = Arc::new(AtomicU32::new(0));
        for _ in 0..3 {
            let ticks = ticks.clone();
            t.spawn("ticker", async move {
                loop {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
        t.spawn("done at once", async {});
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(t.count(), 3, "the finished one is not counted");
        // one that ignores the signal between awaits is still stopped at its next await
        t.spawn("blocking a little", async {
            std::thread::sleep(Duration::from_millis(20));
            std::future::pending::<()>().await;
        });
        let late = t.shutdown(Duration::from_secs(2)).await;
        assert!(late.is_empty(), "{late:?}");
        assert!(t.stopping());
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "nothing runs after shutdown"
        );
        t.spawn("too late", async { panic!("must not start") });
        assert_eq!(t.count(), 0);
    }
}
