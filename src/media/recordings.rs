//! The running recordings: at most one per camera, each a consumer of the camera's shared
//! session (which it holds, so live view's idle timeout does not stop it), with the limits
//! users expect: one recording per camera (409), `MAX_RECORDINGS_PER_USER` for non-admins
//! (429) and free disk space (507). Their life cycle across restarts too: crash recovery of
//! rows left open ([`Recordings::recover`]), continuous recordings resumed
//! ([`Recordings::resume_all`]) and files no row names reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use super::error::{Error, Result};
use super::ingest::Source;
use super::recorder::{self, RecordingPlan};
use super::streams::Streams;
use crate::camera::seal::Sealer;
use crate::store::{Camera, CameraPatch, DynStore, NewRecording, RecordingFilter};
use crate::system::tasks::Tasks;

#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub root: PathBuf,
    pub segment: Duration,
    pub sync_every: Duration,
    pub fragment: Duration,
    pub min_free_bytes: u64,
    /// Finished recordings older than this are deleted (`RETENTION_DAYS`).
    pub retention: Option<Duration>,
    /// This node: written into every recording row.
    pub node: String,
    /// Other nodes share the store: the disk watcher touches only this node's recordings.
    pub shared: bool,
}

struct Active {
    /// Tells this session's entry from a later one of the same camera.
    token: u64,
    user_id: Option<i64>,
    started: Instant,
    current: watch::Receiver<i64>,
    stop: watch::Sender<Option<String>>,
    /// Keep the camera's `is_recording` when it ends (it continues elsewhere or later).
    keep: Arc<std::sync::atomic::AtomicBool>,
    /// When it last wrote a fragment ([`crate::clock::mono_ms`]).
    progress: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Recordings {
    active: Mutex<HashMap<String, Active>>,
    store: DynStore,
    streams: Arc<Streams>,
    pub cfg: RecordingConfig,
    pub counters: Arc<recorder::Counters>,
}

impl Recordings {
    pub fn new(store: DynStore, streams: Arc<Streams>, cfg: RecordingConfig) -> Arc<Recordings> {
        Arc::new(Recordings {
            active: Mutex::new(HashMap::new()),
            store,
            streams,
            cfg,
            counters: Arc::default(),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Running recordings `user` started.
    pub fn count_for(&self, user: i64) -> usize {
        self.map()
            .values()
            .filter(|a| a.user_id == Some(user))
            .count()
    }

    /// (recording id, seconds since it started) of the camera's running recording.
    pub fn status(&self, camera: &str) -> Option<(i64, f64)> {
        self.map()
            .get(camera)
            .map(|a| (*a.current.borrow(), a.started.elapsed().as_secs_f64()))
    }

    pub fn running(&self) -> usize {
        self.map().len()
    }

    /// Cameras recording now.
    pub fn cameras(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Stops the camera's recording because it continues on another node (the camera keeps
    /// `is_recording`) and waits, at most 10 s, until its row is closed.
    pub async fn hand_over(&self, camera: &str, why: &str) {
        if let Some(a) = self.map().get(camera) {
            a.keep.store(true, std::sync::atomic::Ordering::SeqCst);
            a.stop.send_replace(Some(why.to_string()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status(camera).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Recordings that have written nothing for `stall` while their camera is live (frames
    /// arrive, none reach the disk): (camera, seconds since the last fragment). A camera that
    /// is down is not a stall: there is nothing to write.
    pub fn stalled(&self, stall: Duration) -> Vec<(String, f64)> {
        let now = crate::clock::mono_ms();
        self.map()
            .iter()
            .filter_map(|(cam, a)| {
                let idle =
                    now.saturating_sub(a.progress.load(std::sync::atomic::Ordering::Relaxed));
                let live = matches!(self.streams.state(cam), super::ingest::State::Live { .. });
                (live && idle > stall.as_millis() as u64)
                    .then(|| (cam.clone(), idle as f64 / 1000.0))
            })
            .collect()
    }

    fn node_filter(&self) -> Option<&str> {
        self.cfg.shared.then_some(self.cfg.node.as_str())
    }

    /// Crash recovery, before the listener is bound: every recording row left `recording` by a
    /// process that died is reconciled with its file (partial tail cut, duration and size from
    /// what is whole, status `recovered`; `missing` when the file is gone).
    pub async fn recover(&self) -> Result<()> {
        let started = Instant::now();
        // what recovery itself costs, whatever start-up did before it
        let measured = crate::system::host::reset_peak_rss();
        let mut open = self.store.open_recordings().await?;
        // other nodes' rows are theirs to reconcile
        if let Some(me) = self.node_filter() {
            open.retain(|r| r.node == me);
        }
        for r in &open {
            match recorder::recover(&self.store, &self.cfg.root, r).await {
                Ok(r) => {
                    info!(recording = r.id, camera = %r.camera_id, status = r.status.as_str(), seconds = r.duration_sec, "recording reconciled after a crash")
                }
                Err(e) => {
                    warn!(recording = r.id, error = %e.chain(), "cannot reconcile a recording")
                }
            }
        }
        if !open.is_empty() {
            let peak = crate::system::host::peak_rss_bytes().filter(|_| measured);
            info!(
                recordings = open.len(),
                ms = started.elapsed().as_millis() as u64,
                peak_rss_kib = peak.map(|b| b / 1024),
                "crash recovery done"
            );
        }
        Ok(())
    }

    /// Reports `.mp4` files under `RECORDINGS_DIR` that no recording row names (left by a crash
    /// between creating a file and its row, or copied in by hand). They are left where they are:
    /// deleting what we do not know is not ours to do. Runs in the background after start.
    pub async fn report_unknown_files(self: Arc<Self>) {
        let root = self.cfg.root.clone();
        let files = tokio::task::spawn_blocking(move || {
            fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    return;
                };
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, root, out);
                    } else if p.extension().is_some_and(|x| x == "mp4") {
                        if let Ok(rel) = p.strip_prefix(root) {
                            out.push(rel.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            let mut out = Vec::new();
            walk(&root, &root, &mut out);
            out
        })
        .await
        .unwrap_or_default();
        if files.is_empty() {
            return;
        }
        let mut known = std::collections::HashSet::new();
        let mut offset = 0;
        loop {
            let page = RecordingFilter {
                limit: 1000,
                offset,
                ..Default::default()
            };
            let Ok(rows) = self.store.recordings(&page).await else {
                return;
            };
            let n = rows.len();
            known.extend(rows.into_iter().map(|r| r.path));
            if n < 1000 {
                break;
            }
            offset += n;
        }
        let unknown: Vec<&String> = files.iter().filter(|f| !known.contains(*f)).collect();
        for f in unknown.iter().take(20) {
            warn!(file = %f, "a recording file no row names (left in place)");
        }
        if !unknown.is_empty() {
            warn!(count = unknown.len(), dir = %self.cfg.root.display(), "recording files no row names; left in place");
        }
    }

    /// Restarts the continuous recordings that were running when vigia stopped (cleanly or not):
    /// this node's cameras still flagged `is_recording` whose last recording is continuous. A box
    /// that reboots after a power cut goes on recording without anyone logging in.
    pub async fn resume_all(self: &Arc<Self>, sealer: &Sealer, tasks: &Tasks) {
        let cams = match self.store.cameras().await {
            Ok(c) => c,
            Err(e) => return warn!(error = %e.chain(), "cannot list cameras to resume recordings"),
        };
        let mine = |c: &Camera| self.node_filter().is_none_or(|me| c.node == me);
        for cam in cams.into_iter().filter(|c| c.is_recording && mine(c)) {
            let (me, sealer) = (self.clone(), sealer.clone());
            tasks.spawn("recording resume", async move {
                let id = cam.id.clone();
                if let Err(e) = me.resume(&sealer, cam).await {
                    warn!(camera = %id, error = %e.chain(), "cannot resume recording");
                }
            });
        }
    }

    /// Resumes a camera's continuous recording (started by the user of its last one) after a
    /// restart or a hand-over, or clears its `is_recording` when its last recording was not
    /// continuous (or the camera is off).
    pub async fn resume(self: &Arc<Self>, sealer: &Sealer, cam: Camera) -> Result<()> {
        let filter = RecordingFilter {
            camera_ids: Some(vec![cam.id.clone()]),
            limit: 1,
            ..Default::default()
        };
        let last = self.store.recordings(&filter).await?.into_iter().next();
        if !(cam.is_active && last.as_ref().is_some_and(|r| r.continuous)) {
            let patch = CameraPatch {
                is_recording: Some(false),
                ..Default::default()
            };
            self.store.update_camera(&cam.id, patch).await?;
            return Ok(());
        }
        let user = last.and_then(|r| r.user_id);
        let src = Source::of(sealer, &cam)?;
        let id = self.start(src, user, None, None).await?;
        info!(camera = %cam.id, recording = id, "continuous recording resumed");
        Ok(())
    }

    /// Whether `camera` may start recording for `user_id` now: not already recording (409),
    /// the user under `limit` (429), `RECORDINGS_DIR` there with `MIN_FREE_DISK_MB` free (507).
    fn admit(&self, camera: &str, user_id: Option<i64>, limit: Option<usize>) -> Result<()> {
        if let Some(id) = self.status(camera).map(|s| s.0) {
            return Err(Error::Busy(format!(
                "camera {camera} is already recording (recording {id})"
            )));
        }
        if let (Some(limit), Some(u)) = (limit, user_id) {
            if self.count_for(u) >= limit {
                return Err(Error::Limit(format!(
                    "you have {limit} recordings running, the limit (MAX_RECORDINGS_PER_USER) is {limit}"
                )));
            }
        }
        std::fs::create_dir_all(&self.cfg.root).map_err(|source| Error::NoStorage {
            context: format!("cannot create RECORDINGS_DIR {}", self.cfg.root.display()),
            source,
        })?;
        let free = crate::system::host::free_bytes(&self.cfg.root).unwrap_or(u64::MAX);
        if free < self.cfg.min_free_bytes {
            return Err(Error::DiskFull(format!(
                "only {} MiB free under {}, below MIN_FREE_DISK_MB ({} MiB)",
                free / 1_048_576,
                self.cfg.root.display(),
                self.cfg.min_free_bytes / 1_048_576
            )));
        }
        Ok(())
    }

    /// Enters a started recording in the map; false (and nothing entered) when another one of
    /// the camera got there first.
    fn register(&self, camera: &str, active: Active) -> bool {
        let mut map = self.map();
        if map.contains_key(camera) {
            return false;
        }
        map.insert(camera.to_string(), active);
        true
    }

    /// Starts recording `src`; returns the recording's id at once (its file opens with the
    /// camera's first video).
    /// `limit`: the caller's `MAX_RECORDINGS_PER_USER` (none for admins and the system).
    pub async fn start(
        self: &Arc<Self>,
        src: Source,
        user_id: Option<i64>,
        duration: Option<Duration>,
        limit: Option<usize>,
    ) -> Result<i64> {
        let camera = src.camera.clone();
        self.admit(&camera, user_id, limit)?;
        let live = self.streams.start(src, false)?;
        live.hold();
        let progress = Arc::new(std::sync::atomic::AtomicU64::new(crate::clock::mono_ms()));
        let events = live.fanout.subscribe("recorder", 2048);
        let plan = RecordingPlan {
            counters: self.counters.clone(),
            camera_id: camera.clone(),
            user_id,
            duration,
            segment: self.cfg.segment,
            sync_every: self.cfg.sync_every,
            fragment: self.cfg.fragment,
            root: self.cfg.root.clone(),
            node: self.cfg.node.clone(),
            progress: progress.clone(),
        };
        let reserved = match self.reserve(&camera, user_id, duration.is_none()).await {
            Ok(r) => r,
            Err(e) => {
                live.release();
                return Err(e.into());
            }
        };
        let id = reserved.id;
        let (stop, stop_rx) = watch::channel(None);
        let (cur_tx, cur_rx) = watch::channel(id);
        let me = self.clone();
        let cam = camera.clone();
        let store = self.store.clone();
        let token: u64 = rand::random();
        let keep = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keep2 = keep.clone();
        let task = tokio::spawn(async move {
            recorder::run(store.clone(), plan, events, stop_rx, reserved, cur_tx).await;
            live.release();
            me.ended(&cam, token, keep2.load(std::sync::atomic::Ordering::SeqCst))
                .await;
        });
        let active = Active {
            token,
            user_id,
            started: Instant::now(),
            current: cur_rx,
            stop: stop.clone(),
            keep,
            progress,
            task,
        };
        let raced = !self.register(&camera, active);
        if raced {
            // another request started this camera's recording meanwhile: end ours at once
            stop.send_replace(Some(
                "another recording of this camera started first".into(),
            ));
            return Err(Error::Busy(format!("camera {camera} is already recording")));
        }
        let patch = CameraPatch {
            is_recording: Some(true),
            ..Default::default()
        };
        self.store.update_camera(&camera, patch).await?;
        info!(camera = %camera, recording = id, "recording requested");
        Ok(id)
    }

    /// The row of a recording about to start. It exists from now on (its file opens with the
    /// first video): the id is known at once, and a camera that never answers shows as a
    /// recording with nothing in it.
    async fn reserve(
        &self,
        camera: &str,
        user_id: Option<i64>,
        continuous: bool,
    ) -> crate::store::Result<crate::store::Recording> {
        let now = chrono::Utc::now();
        self.store
            .create_recording(NewRecording {
                camera_id: camera.to_string(),
                user_id,
                path: recorder::relative_path(camera, now),
                start_time: now,
                continuous,
                node: self.cfg.node.clone(),
            })
            .await
    }

    /// A recording of `camera` (started with `token`) ended: the camera no longer says it
    /// records, unless the recording is `kept` by a shutdown (it resumes at the next start) or
    /// a hand-over (it goes on on the camera's new node); then it leaves the map, last, since
    /// until then the camera counts as recording here.
    async fn ended(&self, camera: &str, token: u64, kept: bool) {
        if !kept {
            let patch = CameraPatch {
                is_recording: Some(false),
                ..Default::default()
            };
            if let Err(e) = self.store.update_camera(camera, patch).await {
                warn!(camera = %camera, error = %e.chain(), "cannot clear is_recording");
            }
        }
        let mut map = self.map();
        if map.get(camera).is_some_and(|a| a.token == token) {
            map.remove(camera);
        }
    }

    /// Recording `id`'s row.
    pub async fn get(&self, id: i64) -> Result<Option<crate::store::Recording>> {
        Ok(self.store.recording(id).await?)
    }

    /// The rows `filter` selects, newest first.
    pub async fn list(&self, filter: &RecordingFilter) -> Result<Vec<crate::store::Recording>> {
        Ok(self.store.recordings(filter).await?)
    }

    /// How many rows `filter` selects over all its pages.
    pub async fn count(&self, filter: &RecordingFilter) -> Result<u64> {
        Ok(self.store.count_recordings(filter).await?)
    }

    /// Deletes a finished recording: its row, then its file.
    pub async fn delete(&self, r: &crate::store::Recording) -> Result<()> {
        self.store.delete_recording(r.id).await?;
        let path = self.cfg.root.join(&r.path);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(recording = r.id, error = %e, "row deleted but the file could not be removed");
            }
        }
        Ok(())
    }

    /// One pass of the disk watcher: deletes finished recordings past `RETENTION_DAYS`, then,
    /// while free space is under `MIN_FREE_DISK_MB`, the oldest finished ones (never one being
    /// written). When that is not enough, running recordings stop cleanly with the reason.
    /// Each step reads the oldest rows through the start-time index: no scan of the table.
    pub async fn enforce(&self) -> Result<()> {
        if let Some(keep) = self.cfg.retention {
            let cutoff = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
            loop {
                let old: Vec<_> = self
                    .store
                    .oldest_recordings(32, self.node_filter())
                    .await?
                    .into_iter()
                    .filter(|r| r.start_time < cutoff)
                    .collect();
                if old.is_empty() {
                    break;
                }
                for r in &old {
                    self.delete(r).await?;
                    crate::metrics::inc(&crate::metrics::DELETED_FOR_AGE);
                    info!(recording = r.id, camera = %r.camera_id, "deleted: older than RETENTION_DAYS");
                }
            }
        }
        let Some(mut free) = crate::system::host::free_bytes(&self.cfg.root) else {
            return Ok(());
        };
        while free < self.cfg.min_free_bytes {
            let Some(r) = self
                .store
                .oldest_recordings(1, self.node_filter())
                .await?
                .into_iter()
                .next()
            else {
                let running: Vec<String> = self.map().keys().cloned().collect();
                if !running.is_empty() {
                    let why = format!(
                        "disk full: {} MiB free under {}, below MIN_FREE_DISK_MB, and no finished recording left to delete",
                        free / 1_048_576,
                        self.cfg.root.display()
                    );
                    warn!("{why}; stopping {} recording(s)", running.len());
                    for cam in running {
                        if self.stop(&cam, &why).is_ok() {
                            crate::metrics::inc(&crate::metrics::STOPPED_DISK_FULL);
                        }
                    }
                }
                break;
            };
            self.delete(&r).await?;
            crate::metrics::inc(&crate::metrics::DELETED_FOR_SPACE);
            info!(recording = r.id, camera = %r.camera_id, free_mib = free / 1_048_576, "deleted to free disk space");
            free = crate::system::host::free_bytes(&self.cfg.root).unwrap_or(u64::MAX);
        }
        Ok(())
    }

    /// Runs [`Recordings::enforce`] every `every`, for ever (the caller's task set stops it).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            // never create the directory here: on an unmounted recordings disk that would
            // start filling the root file system
            if self.cfg.root.is_dir() {
                if let Err(e) = self.enforce().await {
                    warn!(error = %e.chain(), "disk watcher failed");
                }
            }
        }
    }

    /// Asks the camera's recording to stop. `NotFound` when it is not recording.
    pub fn stop(&self, camera: &str, why: &str) -> Result<()> {
        let map = self.map();
        let a = map
            .get(camera)
            .ok_or_else(|| Error::NotFound(format!("camera {camera} is not recording")))?;
        a.stop.send_replace(Some(why.to_string()));
        Ok(())
    }

    /// Stops every recording cleanly (last fragment written, rows final) and waits for them;
    /// the cameras keep `is_recording` (the shutdown path: continuous ones resume at start).
    pub async fn stop_all(&self, why: &str) {
        let tasks: Vec<_> = {
            let mut map = self.map();
            map.drain()
                .map(|(_, a)| {
                    // the cameras keep `is_recording`: continuous recordings resume at start
                    a.keep.store(true, std::sync::atomic::Ordering::SeqCst);
                    a.stop.send_replace(Some(why.to_string()));
                    a.task
                })
                .collect()
        };
        let n = tasks.len();
        // one deadline for all: a shutdown stays bounded however many cameras record
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            warn!("some recordings did not close in time");
        }
        if n > 0 {
            info!(recordings = n, "recordings closed");
        }
    }
}

/// The note of recordings closed by a shutdown (their cameras keep `is_recording`, so
/// continuous ones resume).
pub const SHUTDOWN: &str = "vigia shut down";

/// The recording life cycle without a network: the cameras are scripted through the
/// streams' [`Opener`](super::streams::Opener), the store is redb in a temporary directory,
/// and durations are media time, so seconds of video take milliseconds.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::TrackKind;
    use crate::media::frame::{test_tracks, Event, Frame};
    use crate::media::hls::HlsConfig;
    use crate::media::streams::{Opener, Pull};
    use crate::store::{Brand, RecordingStatus, Transport};
    use bytes::Bytes;

    /// A camera that sends `seconds` of 25 fps video (a key frame every second) as fast as
    /// it is taken, then stays connected, silent, until its session is stopped.
    struct Scripted {
        seconds: i64,
    }

    impl Opener for Scripted {
        fn pull(&self, mut p: Pull) -> futures_util::future::BoxFuture<'static, ()> {
            let frames = self.seconds * 25;
            Box::pin(async move {
                if frames > 0 {
                    p.fanout.publish(Event::Start(test_tracks(1, 640, 360)));
                }
                for n in 0..frames {
                    p.fanout.publish(Event::Frame(Frame {
                        kind: TrackKind::Video,
                        pts: n * 3600,
                        keyframe: n % 25 == 0,
                        data: Bytes::from(vec![0u8; 500]),
                        arrived: Instant::now(),
                        wall: chrono::Utc::now(),
                    }));
                    if n % 25 == 0 {
                        // a camera sends a second's frames over a second: the consumers run
                        tokio::task::yield_now().await;
                    }
                }
                let _ = p.stop.wait_for(|s| *s).await;
            })
        }
    }

    struct Rig {
        _dir: tempfile::TempDir,
        store: DynStore,
        recordings: Arc<Recordings>,
    }

    async fn rig(camera_seconds: i64) -> Rig {
        rig_with(camera_seconds, None).await
    }

    async fn rig_with(camera_seconds: i64, retention: Option<Duration>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(None, dir.path()).await.unwrap();
        for ip in ["10.0.0.1", "10.0.0.2"] {
            store
                .create_camera(Camera {
                    id: ip.into(),
                    ip: ip.into(),
                    channel: 1,
                    name: format!("cam {ip}"),
                    brand: Brand::Generic,
                    port: 554,
                    rtsp_url_sealed: vec![1],
                    rtsp_url_display: format!("rtsp://{ip}/"),
                    transport: Transport::Tcp,
                    is_active: true,
                    last_seen: None,
                    is_recording: false,
                    created_at: chrono::Utc::now(),
                    node: "box".into(),
                    kind: "ip".into(),
                })
                .await
                .unwrap();
        }
        let streams = Streams::with_opener(
            8,
            Duration::from_secs(60),
            HlsConfig::default(),
            Arc::new(Scripted {
                seconds: camera_seconds,
            }),
        );
        let recordings = Recordings::new(
            store.clone(),
            streams,
            RecordingConfig {
                root: dir.path().join("recordings"),
                segment: Duration::from_secs(900),
                sync_every: Duration::from_secs(5),
                fragment: Duration::from_secs(1),
                min_free_bytes: 0,
                retention,
                node: "box".into(),
                shared: false,
            },
        );
        Rig {
            _dir: dir,
            store,
            recordings,
        }
    }

    fn source(camera: &str) -> Source {
        Source {
            camera: camera.into(),
            url: format!("rtsp://{camera}/"),
            credentials: None,
            transport: Transport::Tcp,
        }
    }

    impl Rig {
        /// Waits (bounded) until `camera` no longer records here.
        async fn ended(&self, camera: &str) {
            let t0 = Instant::now();
            while self.recordings.status(camera).is_some() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{camera} still records"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }

        /// What the camera's row says.
        async fn is_recording(&self, camera: &str) -> bool {
            let cam = self.store.camera(camera).await.unwrap();
            cam.expect("the camera exists").is_recording
        }

        async fn row(&self, id: i64) -> crate::store::Recording {
            self.store.recording(id).await.unwrap().unwrap()
        }
    }

    /// Recordings imported from the old backend are finished ones: past `RETENTION_DAYS` their
    /// row and file go like any other's.
    #[tokio::test]
    async fn imported_recordings_age_out_like_any_finished_one() {
        let r = rig_with(1, Some(Duration::from_secs(86_400))).await;
        let root = r._dir.path().join("recordings");
        let now = chrono::Utc::now();
        let mut dump = crate::store::Dump::default();
        for (id, hours) in [(1, 49), (2, 1)] {
            let path = format!("10.0.0.1/2026/01/01/00000{id}-flask{id}.mp4");
            std::fs::create_dir_all(root.join(&path).parent().unwrap()).unwrap();
            std::fs::write(root.join(&path), b"an ffmpeg mp4").unwrap();
            dump.recordings.push(crate::store::Recording {
                id,
                camera_id: "10.0.0.1".into(),
                user_id: None,
                path,
                start_time: now - chrono::Duration::hours(hours),
                end_time: Some(now - chrono::Duration::hours(hours) + chrono::Duration::seconds(3)),
                duration_sec: 3.0,
                file_size: 13,
                status: RecordingStatus::Imported,
                continuous: false,
                note: None,
                node: "box".into(),
            });
        }
        r.store.import(&dump).await.unwrap();
        r.recordings.enforce().await.unwrap();
        assert!(
            r.store.recording(1).await.unwrap().is_none(),
            "49 h old: gone"
        );
        assert!(!root.join(&dump.recordings[0].path).exists());
        assert_eq!(
            r.row(2).await.status,
            RecordingStatus::Imported,
            "1 h old: kept"
        );
        assert!(root.join(&dump.recordings[1].path).exists());
    }

    #[tokio::test]
    async fn a_fixed_recording_runs_to_its_duration_then_lets_the_camera_go() {
        let rig = rig(10).await;
        let id = rig
            .recordings
            .start(
                source("10.0.0.1"),
                Some(7),
                Some(Duration::from_secs(3)),
                None,
            )
            .await
            .unwrap();
        assert!(rig.is_recording("10.0.0.1").await);
        rig.ended("10.0.0.1").await;
        let r = rig.row(id).await;
        assert_eq!(
            (r.status, r.user_id, r.continuous),
            (RecordingStatus::Completed, Some(7), false)
        );
        assert!((r.duration_sec - 3.0).abs() <= 0.04 + 1e-9, "{r:?}");
        assert!(r.file_size > 0);
        assert!(
            !rig.is_recording("10.0.0.1").await,
            "the camera no longer says it records"
        );
        assert_eq!(rig.recordings.count_for(7), 0);
    }

    #[tokio::test]
    async fn a_camera_that_sends_no_video_leaves_a_row_that_says_so() {
        let rig = rig(0).await;
        let id = rig
            .recordings
            .start(source("10.0.0.1"), None, None, None)
            .await
            .unwrap();
        assert_eq!(rig.recordings.status("10.0.0.1").map(|s| s.0), Some(id));
        rig.recordings
            .stop("10.0.0.1", "stopped by a user")
            .unwrap();
        rig.ended("10.0.0.1").await;
        let r = rig.row(id).await;
        assert_eq!((r.status, r.file_size), (RecordingStatus::Stopped, 0));
        assert_eq!(
            r.note.as_deref(),
            Some("no video arrived from the camera (stopped by a user)")
        );
        assert!(matches!(
            rig.recordings.stop("10.0.0.1", "again"),
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn one_recording_per_camera_and_the_users_limit_hold() {
        let rig = rig(2).await;
        let first = rig
            .recordings
            .start(source("10.0.0.1"), Some(3), None, Some(1));
        let id = first.await.unwrap();
        let again = rig
            .recordings
            .start(source("10.0.0.1"), Some(4), None, None)
            .await;
        assert!(matches!(again, Err(Error::Busy(_))), "{again:?}");
        let over = rig
            .recordings
            .start(source("10.0.0.2"), Some(3), None, Some(1))
            .await;
        assert!(matches!(over, Err(Error::Limit(_))), "{over:?}");
        assert_eq!(rig.recordings.count_for(3), 1);
        rig.recordings.stop_all(SHUTDOWN).await;
        let r = rig.row(id).await;
        assert_eq!(r.status, RecordingStatus::Stopped);
        // what the recorder had taken when the stop came (the camera sent 2 s)
        assert!(r.duration_sec <= 2.0 + 1e-9, "{r:?}");
        // stopped by a shutdown, a continuous recording keeps its camera's is_recording (it
        // resumes at the next start)
        assert!(rig.is_recording("10.0.0.1").await);
    }
}
