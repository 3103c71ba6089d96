//! The live cameras: at most one session per camera, started on demand, shared by every
//! viewer (and, later, recordings), stopped `STREAM_TIMEOUT` seconds after the last HLS
//! request unless something holds it, and never more than `MAX_STREAMS` at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use super::error::{Error, Result};
use super::fanout::Fanout;
use super::hls::{Hls, HlsConfig};
use super::ingest::{self, Source, State};

/// One camera being pulled.
pub struct Live {
    pub id: String,
    pub hls: Arc<Hls>,
    pub fanout: Arc<Fanout>,
    state: Arc<Mutex<State>>,
    last_access: Mutex<Instant>,
    /// Holders other than viewers (recordings).
    holds: AtomicUsize,
    /// RTSP sessions opened so far (1 unless it reconnected).
    pub sessions: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    /// The task feeding the HLS window from the fan-out, while someone watches. A session
    /// pulled only for a recording has none: no window in RAM, no wake-up per frame.
    feeder: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The session's supervisor (ends after its TEARDOWN is started).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Addresses that fetched its live files lately, and when (`/metrics`).
    viewers: Mutex<Vec<(std::net::IpAddr, Instant)>>,
}

/// A viewer is an address that fetched live files of the camera within this long (players
/// reload the playlist every part or segment: a few seconds at most).
const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// Most addresses remembered per camera.
const MAX_VIEWERS: usize = 256;

impl Live {
    /// Something other than a viewer (a recording) needs the session.
    pub fn hold(&self) {
        self.holds.fetch_add(1, Ordering::SeqCst);
    }

    /// Makes the HLS window fill from the next key frame (a viewer came).
    pub fn want_hls(&self) {
        let mut feeder = self.feeder.lock().unwrap_or_else(|p| p.into_inner());
        if feeder.is_none() {
            let mut rx = self.fanout.subscribe("hls", 512);
            let hls = self.hls.clone();
            *feeder = Some(tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    hls.push(ev);
                }
            }));
        }
    }

    /// Drops the HLS window and its feeder (nobody watches any more).
    fn drop_hls(&self) {
        if let Some(task) = self.feeder.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
            self.hls.clear();
        }
    }

    /// Undoes a [`Live::hold`]; the session then lives on as for a viewer that just left.
    pub fn release(&self) {
        let _ = self
            .holds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| h.checked_sub(1));
        self.touch();
    }

    /// Its live playlist ([`Hls::playlist`]); one that is not ready says what the session is
    /// doing (a camera that refuses or cannot be reached, rather than one slow to send its
    /// first key frame).
    pub async fn playlist(
        &self,
        msn: Option<u64>,
        part: Option<u64>,
        query: &str,
    ) -> Result<String> {
        match self.hls.playlist(msn, part, query).await {
            Err(Error::NotReady(why)) => Err(Error::NotReady(match self.state() {
                State::Retrying { last_error, .. } | State::Unauthorized { last_error, .. } => {
                    format!(
                        "{why}; the camera's session is {}: {last_error}",
                        self.state_name()
                    )
                }
                State::Unsupported { reason, .. } => {
                    format!("{why}; the camera's session is unsupported: {reason}")
                }
                _ => why,
            })),
            other => other,
        }
    }

    /// `addr` fetched one of its live files.
    pub fn seen(&self, addr: std::net::IpAddr) {
        let mut v = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        v.retain(|(_, at)| now.duration_since(*at) < VIEWER_WINDOW);
        if let Some(entry) = v.iter_mut().find(|(a, _)| *a == addr) {
            entry.1 = now;
        } else if v.len() < MAX_VIEWERS {
            v.push((addr, now));
        }
    }

    /// Addresses that fetched its live files within the last [`VIEWER_WINDOW`].
    pub fn viewers(&self) -> usize {
        let v = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        v.iter()
            .filter(|(_, at)| at.elapsed() < VIEWER_WINDOW)
            .count()
    }

    pub fn touch(&self) {
        *self.last_access.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
    /// The state's name (`live`, `retrying`, …), without copying the state.
    pub fn state_name(&self) -> &'static str {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).name()
    }

    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn idle_for(&self) -> Duration {
        self.last_access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

pub struct Streams {
    live: Mutex<HashMap<String, Arc<Live>>>,
    max: usize,
    timeout: Duration,
    hls: HlsConfig,
    opener: Arc<dyn Opener>,
}

/// What a camera's session needs to run: where to pull from, where frames go, the state to
/// keep, when to stop, and a count of sessions opened.
pub struct Pull {
    pub src: Source,
    pub fanout: Arc<Fanout>,
    pub state: Arc<Mutex<State>>,
    pub stop: watch::Receiver<bool>,
    pub sessions: Arc<AtomicU64>,
}

/// Pulls a camera until told to stop: RTSP through retina ([`Rtsp`]) in the product, a
/// scripted camera in unit tests of what consumes the frames.
pub trait Opener: Send + Sync {
    fn pull(&self, p: Pull) -> futures_util::future::BoxFuture<'static, ()>;
}

/// The product's opener: [`ingest::supervise`], one retina session at a time, reconnecting.
pub struct Rtsp;

impl Opener for Rtsp {
    fn pull(&self, p: Pull) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(ingest::supervise(
            p.src, p.fanout, p.state, p.stop, p.sessions,
        ))
    }
}

impl Streams {
    pub fn new(max: usize, timeout: Duration, hls: HlsConfig) -> Arc<Streams> {
        Streams::with_opener(max, timeout, hls, Arc::new(Rtsp))
    }

    /// [`Streams::new`] with cameras pulled by `opener`.
    pub fn with_opener(
        max: usize,
        timeout: Duration,
        hls: HlsConfig,
        opener: Arc<dyn Opener>,
    ) -> Arc<Streams> {
        Arc::new(Streams {
            live: Mutex::new(HashMap::new()),
            max,
            timeout,
            hls,
            opener,
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.map().get(id).cloned()
    }

    /// The camera's state (`idle` when not pulled).
    pub fn state(&self, id: &str) -> State {
        self.get(id).map_or(State::Idle, |l| l.state())
    }

    /// RTSP sessions opened for the camera since it started (0 when idle).
    pub fn sessions(&self, id: &str) -> u64 {
        self.get(id)
            .map_or(0, |l| l.sessions.load(Ordering::Relaxed))
    }

    /// Cameras with a session now.
    pub fn ids(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    pub fn active(&self) -> usize {
        self.map().len()
    }

    /// Starts pulling `src` unless it is already; returns at once.
    /// Starts pulling `src` unless it is already. `viewer`: someone will watch, so the HLS
    /// window fills (a session pulled only for a recording keeps no window in RAM).
    pub fn start(&self, src: Source, viewer: bool) -> Result<Arc<Live>> {
        let mut map = self.map();
        if let Some(l) = map.get(&src.camera) {
            l.touch();
            if viewer {
                l.want_hls();
            }
            return Ok(l.clone());
        }
        if map.len() >= self.max {
            return Err(Error::Limit(format!(
                "{} cameras are streaming, the limit (MAX_STREAMS) is {}",
                map.len(),
                self.max
            )));
        }
        let (stop, stop_rx) = watch::channel(false);
        let live = Arc::new(Live {
            id: src.camera.clone(),
            hls: Arc::new(Hls::new(self.hls)),
            fanout: Arc::new(Fanout::new(&src.camera)),
            state: Arc::new(Mutex::new(State::Connecting { attempt: 0 })),
            last_access: Mutex::new(Instant::now()),
            holds: AtomicUsize::new(0),
            sessions: Arc::new(AtomicU64::new(0)),
            stop,
            feeder: Mutex::new(None),
            task: Mutex::new(None),
            viewers: Mutex::new(Vec::new()),
        });
        if viewer {
            live.want_hls();
        }
        let task = tokio::spawn(self.opener.pull(Pull {
            src,
            fanout: live.fanout.clone(),
            state: live.state.clone(),
            stop: stop_rx,
            sessions: live.sessions.clone(),
        }));
        *live.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        info!(camera = %live.id, "stream started");
        map.insert(live.id.clone(), live.clone());
        Ok(live)
    }

    /// Stops the camera's session unless something holds it. `NotFound` when not pulled.
    pub fn stop(&self, id: &str) -> Result<bool> {
        let mut map = self.map();
        let live = map
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("camera {id} is not streaming")))?;
        if live.holds.load(Ordering::SeqCst) > 0 {
            return Ok(false);
        }
        let _ = live.stop.send(true);
        map.remove(id);
        info!(camera = %id, "stream stopped");
        Ok(true)
    }

    /// Stops the camera's session whatever holds it (the camera was deleted or changed).
    pub fn kill(&self, id: &str) {
        if let Some(live) = self.map().remove(id) {
            let _ = live.stop.send(true);
            live.fanout.close();
            info!(camera = %id, "stream stopped: the camera changed");
        }
    }

    /// Stops sessions nobody asked for within `STREAM_TIMEOUT`; run every second or so.
    pub fn reap(&self) {
        // held sessions nobody watches any more drop their window
        for l in self.map().values() {
            if l.holds.load(Ordering::SeqCst) > 0 && l.idle_for() >= self.timeout {
                l.drop_hls();
            }
        }
        let idle: Vec<String> = self
            .map()
            .values()
            .filter(|l| l.holds.load(Ordering::SeqCst) == 0 && l.idle_for() >= self.timeout)
            .map(|l| l.id.clone())
            .collect();
        for id in idle {
            let _ = self.stop(&id);
        }
    }

    /// Stops every session and waits, at most `within`, until each has ended and sent its
    /// RTSP `TEARDOWN` (shutdown).
    pub async fn stop_all(&self, within: Duration) {
        let all: Vec<Arc<Live>> = self.map().drain().map(|(_, l)| l).collect();
        let mut tasks = Vec::new();
        for l in &all {
            let _ = l.stop.send(true);
            l.fanout.close();
            if let Some(t) = l.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                tasks.push(t);
            }
        }
        let wait = async {
            futures_util::future::join_all(tasks).await;
            let _ = ingest::group().await_teardown().await;
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            tracing::warn!("camera sessions did not all end in time");
        } else if !all.is_empty() {
            info!(sessions = all.len(), "camera sessions closed");
        }
    }

    /// Part publish latency over all cameras: (p50, p99, samples) in milliseconds.
    pub fn publish_latency_ms(&self) -> Option<(f64, f64, usize)> {
        let mut all: Vec<u32> = self
            .map()
            .values()
            .flat_map(|l| l.hls.publish_latencies())
            .collect();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        let at = |q: f64| f64::from(all[((all.len() - 1) as f64 * q).round() as usize]) / 1000.0;
        Some((at(0.5), at(0.99), all.len()))
    }

    /// Bytes held by all HLS windows.
    pub fn window_bytes(&self) -> usize {
        self.map().values().map(|l| l.hls.bytes()).sum()
    }
}
