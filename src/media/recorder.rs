//! PC-NVR recording: one more consumer of a camera's fan-out, writing crash-safe fMP4.
//!
//! A file is `ftyp`+`moov` then a `moof`+`mdat` fragment about every second, each written
//! whole with one `write` of the frames' own buffers, so a `kill -9` loses at most the
//! fragment being built and the file on disk is always playable, also while it grows. Data
//! is `fdatasync`ed every `sync_every` (default 5 s), which bounds what a power cut loses.
//! Paths are built from the camera id and the time only:
//! `RECORDINGS_DIR/<camera>/<yyyy>/<mm>/<dd>/<HHMMSS>-<random>.mp4`.
//!
//! A fixed-duration recording stops at its duration (media time). A continuous one rotates to
//! a new file (a new row) at the first key frame after `segment`. When the camera drops and
//! comes back with the same parameters, the same file goes on (the muxer keeps its timeline);
//! with new parameters, a new file starts (a new row) — a file has one init segment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::fmp4::{self, TrackKind};
use super::frame::{Event, Tracks};
use super::mux::Muxer;
use crate::error::{Error, Result};
use crate::store::{DynStore, NewRecording, Recording, RecordingEnd, RecordingStatus};

/// Totals over every recording (benchmarks, `/stats`): frames taken from the camera, frames
/// and payload bytes written, and file bytes (payload plus boxes).
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: std::sync::atomic::AtomicU64,
    pub frames_out: std::sync::atomic::AtomicU64,
    pub payload_out: std::sync::atomic::AtomicU64,
    pub file_bytes: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn add(c: &std::sync::atomic::AtomicU64, n: u64) {
        c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How a recording session is set up.
#[derive(Debug, Clone)]
pub struct RecordingPlan {
    pub counters: Arc<Counters>,
    pub camera_id: String,
    pub user_id: Option<i64>,
    /// `None`: continuous.
    pub duration: Option<Duration>,
    pub segment: Duration,
    pub sync_every: Duration,
    pub fragment: Duration,
    pub root: PathBuf,
    /// This node, written into each row.
    pub node: String,
    /// [`crate::clock::mono_ms`] of the last fragment written (the watchdog reads it).
    pub progress: Arc<std::sync::atomic::AtomicU64>,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Reached its duration.
    Done,
    /// Told to stop (user, shutdown, camera change, disk): the note says why.
    Stopped(String),
}

/// The relative path of a new recording file: camera id (validated at creation: an IP or a
/// host name, `-chN`) and UTC time, with a random suffix so two files never collide.
pub fn relative_path(camera: &str, start: DateTime<Utc>) -> String {
    format!(
        "{camera}/{:04}/{:02}/{:02}/{:02}{:02}{:02}-{}.mp4",
        start.year(),
        start.month(),
        start.day(),
        start.hour(),
        start.minute(),
        start.second(),
        hex::encode(rand::random::<[u8; 4]>())
    )
}

struct File {
    row: Recording,
    /// Written from tokio's blocking pool, so a disk that hangs blocks those threads and not
    /// the runtime (which then notices the stall: see `system::watchdog`).
    file: Arc<std::fs::File>,
    path: PathBuf,
    bytes: u64,
    muxer: Muxer,
    /// Video seconds written.
    written: f64,
    last_sync: Instant,
    init: bytes::Bytes,
    /// A write failed: nothing more goes into this file.
    broken: bool,
    counters: Arc<Counters>,
    progress: Arc<std::sync::atomic::AtomicU64>,
}

/// Runs blocking file I/O on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("file task failed: {e}")))
}

/// Writes every chunk with `writev`, resuming after partial writes.
fn write_all_chunks(mut file: &std::fs::File, chunks: &[bytes::Bytes]) -> std::io::Result<()> {
    let (mut i, mut off) = (0usize, 0usize);
    while i < chunks.len() {
        let mut slices: Vec<std::io::IoSlice<'_>> = Vec::with_capacity((chunks.len() - i).min(64));
        slices.push(std::io::IoSlice::new(&chunks[i][off..]));
        slices.extend(
            chunks[i + 1..]
                .iter()
                .take(63)
                .map(|c| std::io::IoSlice::new(c)),
        );
        let mut n = file.write_vectored(&slices)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "wrote nothing",
            ));
        }
        while n > 0 && i < chunks.len() {
            let left = chunks[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

impl File {
    async fn write_fragment(&mut self, include_pending: bool) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        if include_pending {
            self.muxer.complete_pending();
        }
        if let Some(m) = self.muxer.flush() {
            let len = m.fragment.len as u64;
            let header = m.fragment.chunks.first().map_or(0, |h| h.len()) as u64;
            let frames = m.fragment.chunks.len().saturating_sub(1) as u64;
            let (file, chunks, good) = (self.file.clone(), m.fragment.chunks, self.bytes);
            // one fragment at a time, straight from the frames' buffers (no copy); a crash
            // leaves whole fragments and at most one partial tail, which recovery cuts
            let written = blocking(move || {
                let r = write_all_chunks(&file, &chunks);
                if r.is_err() {
                    // a full disk: cut what this fragment left, so the file stays whole
                    let _ = file.set_len(good);
                    let _ = std::io::Seek::seek(&mut &*file, std::io::SeekFrom::Start(good));
                }
                r
            })
            .await?;
            if let Err(e) = written {
                self.broken = true;
                return Err(Error::new(
                    crate::error::Kind::InsufficientStorage,
                    format!("cannot write {}: {e}", self.path.display()),
                ));
            }
            self.bytes += len;
            self.written += m.duration;
            self.progress.store(
                crate::clock::mono_ms(),
                std::sync::atomic::Ordering::Relaxed,
            );
            Counters::add(&self.counters.frames_out, frames);
            Counters::add(&self.counters.payload_out, len - header);
            Counters::add(&self.counters.file_bytes, len);
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<()> {
        let file = self.file.clone();
        blocking(move || file.sync_data())
            .await?
            .map_err(|e| Error::internal(format!("fdatasync {}: {e}", self.path.display())))?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// Opens a new file for `tracks`, for the row `reserved` (made when the recording was asked
/// for) or a new row.
async fn open(
    store: &DynStore,
    plan: &RecordingPlan,
    tracks: &Arc<Tracks>,
    wall: DateTime<Utc>,
    reserved: Option<Recording>,
) -> Result<File> {
    let rel = match &reserved {
        Some(r) => r.path.clone(),
        None => relative_path(&plan.camera_id, wall),
    };
    let path = plan.root.join(&rel);
    let fail = |e: std::io::Error| {
        Error::new(
            crate::error::Kind::InsufficientStorage,
            format!("cannot create {}: {e}", path.display()),
        )
    };
    let init = fmp4::init_segment(&tracks.infos());
    let (p2, i2) = (path.clone(), init.clone());
    let file = blocking(move || {
        if let Some(dir) = p2.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&p2)?;
        file.write_all(&i2)?;
        Ok::<_, std::io::Error>(file)
    })
    .await?
    .map_err(fail)?;
    Counters::add(&plan.counters.file_bytes, init.len() as u64);
    let row = match reserved {
        Some(r) => r,
        None => {
            store
                .create_recording(NewRecording {
                    camera_id: plan.camera_id.clone(),
                    user_id: plan.user_id,
                    path: rel,
                    start_time: wall,
                    continuous: plan.duration.is_none(),
                    node: plan.node.clone(),
                })
                .await?
        }
    };
    Ok(File {
        row,
        file: Arc::new(file),
        path,
        bytes: init.len() as u64,
        muxer: Muxer::new(tracks.clone(), 1),
        written: 0.0,
        last_sync: Instant::now(),
        init,
        broken: false,
        counters: plan.counters.clone(),
        progress: plan.progress.clone(),
    })
}

async fn close(
    store: &DynStore,
    mut f: File,
    status: RecordingStatus,
    note: Option<String>,
) -> Result<Recording> {
    let flushed = f.write_fragment(true).await;
    let synced = f.sync().await;
    let note = match (&flushed, &synced, note) {
        (Err(e), _, _) | (_, Err(e), _) => Some(e.message.clone()),
        (_, _, n) => n,
    };
    let row = store
        .finish_recording(
            f.row.id,
            RecordingEnd {
                end_time: f.row.start_time
                    + chrono::Duration::milliseconds((f.written * 1000.0) as i64),
                duration_sec: (f.written * 1000.0).round() / 1000.0,
                file_size: f.bytes,
                status,
                note,
            },
        )
        .await?;
    info!(camera = %row.camera_id, recording = row.id, seconds = row.duration_sec, bytes = row.file_size, status = row.status.as_str(), "recording ended");
    Ok(row)
}

/// Runs one recording session from the camera's events until it ends. `first` is called with
/// the id of the first row as soon as it exists.
pub async fn run(
    store: DynStore,
    plan: RecordingPlan,
    mut events: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<Option<String>>,
    reserved: Recording,
    current: watch::Sender<i64>,
) -> Ending {
    // the row made when the recording was asked for; its file opens with the first video
    let mut reserved = Some(reserved);
    let mut cur: Option<File> = None;
    let mut total = 0.0f64;
    let ending = loop {
        let ev = tokio::select! {
            _ = stop.changed() => break Ending::Stopped(stop.borrow().clone().unwrap_or_else(|| "stopped".into())),
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break Ending::Stopped("the camera session ended".into()),
            },
        };
        let step: Result<Option<Ending>> = async {
            match ev {
                Event::Start(tracks) => {
                    let same = cur.as_ref().is_some_and(|f| f.init == fmp4::init_segment(&tracks.infos()));
                    if !same {
                        if let Some(f) = cur.take() {
                            total += f.written;
                            close(&store, f, RecordingStatus::Completed, Some("the camera's parameters changed; continued in the next file".into())).await?;
                        }
                        let f = open(&store, &plan, &tracks, Utc::now(), reserved.take()).await?;
                        current.send_replace(f.row.id);
                        info!(camera = %plan.camera_id, recording = f.row.id, path = %f.path.display(), "recording started");
                        cur = Some(f);
                    }
                }
                Event::Frame(fr) => {
                    let Some(open_file) = cur.as_ref() else { return Ok(None) };
                    Counters::add(&plan.counters.frames_in, 1);
                    let key = fr.kind == TrackKind::Video && fr.keyframe;
                    let rotate = key
                        && plan.duration.is_none()
                        && open_file.written + open_file.muxer.video_done() >= plan.segment.as_secs_f64();
                    if let Some(f) = cur.take_if(|_| rotate) {
                        // continuous: rotate at a key frame
                        let tracks = f.muxer.tracks.clone();
                        total += f.written;
                        close(&store, f, RecordingStatus::Completed, None).await?;
                        let mut nf = open(&store, &plan, &tracks, fr.wall, None).await?;
                        current.send_replace(nf.row.id);
                        nf.muxer.push(fr);
                        cur = Some(nf);
                        return Ok(None);
                    }
                    let Some(f) = cur.as_mut() else { return Ok(None) };
                    let video = fr.kind == TrackKind::Video;
                    f.muxer.push(fr);
                    if video && f.muxer.video_buffered() >= plan.fragment.as_secs_f64() {
                        f.write_fragment(true).await?;
                        if f.last_sync.elapsed() >= plan.sync_every {
                            f.sync().await?;
                        }
                    }
                    if let Some(d) = plan.duration {
                        if total + f.written >= d.as_secs_f64() {
                            return Ok(Some(Ending::Done));
                        }
                    }
                }
            }
            Ok(None)
        }
        .await;
        match step {
            Ok(None) => {}
            Ok(Some(e)) => break e,
            Err(e) => {
                warn!(camera = %plan.camera_id, error = %e, "recording failed");
                break Ending::Stopped(e.message);
            }
        }
    };
    if let Some(f) = cur {
        let (status, note) = match &ending {
            Ending::Done => (RecordingStatus::Completed, None),
            Ending::Stopped(why) => (RecordingStatus::Stopped, Some(why.clone())),
        };
        if let Err(e) = close(&store, f, status, note).await {
            warn!(camera = %plan.camera_id, error = %e, "could not finish the recording row");
        }
    }
    if let Some(r) = reserved {
        // no video ever came: the row says so, there is no file
        let why = match &ending {
            Ending::Stopped(w) => format!("no video arrived from the camera ({w})"),
            Ending::Done => "no video arrived from the camera".into(),
        };
        let end = RecordingEnd {
            end_time: r.start_time,
            duration_sec: 0.0,
            file_size: 0,
            status: RecordingStatus::Stopped,
            note: Some(why),
        };
        if let Err(e) = store.finish_recording(r.id, end).await {
            warn!(camera = %plan.camera_id, error = %e, "could not finish the recording row");
        }
    }
    ending
}

/// What crash recovery found in a file: the length of its whole fragments and the video
/// seconds they hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Salvage {
    pub good_len: u64,
    pub seconds: f64,
}

/// Walks a file's top-level boxes: `ftyp`, `moov`, then `moof`+`mdat` pairs. Returns where the
/// last whole pair ends and the video duration up to there (track 1's `trun` durations over
/// its `mdhd` timescale).
pub fn salvage(data: &[u8]) -> Salvage {
    let be32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let mut off = 0usize;
    let mut good = 0usize;
    let mut timescale = 90_000u32;
    let mut ticks = 0u64;
    let mut pending_ticks = 0u64;
    while let (Some(size), Some(kind)) = (be32(data, off), data.get(off + 4..off + 8)) {
        let size = size as usize;
        if size < 8 || off + size > data.len() {
            break; // a partial box: the tail a crash left
        }
        let body = &data[off + 8..off + size];
        match kind {
            b"moov" => {
                // the first mdhd is the video track's
                if let Some(i) = body.windows(4).position(|w| w == b"mdhd") {
                    if let Some(ts) = be32(body, i + 4 + 4 + 8) {
                        timescale = ts.max(1);
                    }
                }
                good = off + size;
            }
            b"moof" => {
                pending_ticks = track1_ticks(body);
            }
            b"mdat" => {
                ticks += pending_ticks;
                pending_ticks = 0;
                good = off + size;
            }
            _ => good = off + size,
        }
        off += size;
    }
    Salvage {
        good_len: good as u64,
        seconds: ticks as f64 / f64::from(timescale),
    }
}

/// Sum of sample durations of track 1 in a `moof` body.
fn track1_ticks(moof: &[u8]) -> u64 {
    let be32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let mut off = 0;
    while off + 8 <= moof.len() {
        let size = be32(moof, off) as usize;
        if size < 8 || off + size > moof.len() {
            break;
        }
        if &moof[off + 4..off + 8] == b"traf" {
            let traf = &moof[off + 8..off + size];
            let mut t = 0;
            let (mut track, mut sum) = (0, 0u64);
            while t + 8 <= traf.len() {
                let s = be32(traf, t) as usize;
                if s < 8 || t + s > traf.len() {
                    break;
                }
                match &traf[t + 4..t + 8] {
                    b"tfhd" => track = be32(traf, t + 12),
                    b"trun" => {
                        let flags = be32(traf, t + 8) & 0xff_ffff;
                        let n = be32(traf, t + 12) as usize;
                        let mut p = t + 16;
                        if flags & 0x1 != 0 {
                            p += 4;
                        }
                        if flags & 0x4 != 0 {
                            p += 4;
                        }
                        let per = [0x100, 0x200, 0x400, 0x800]
                            .iter()
                            .filter(|f| flags & **f != 0)
                            .count()
                            * 4;
                        if flags & 0x100 != 0 {
                            for i in 0..n {
                                sum += u64::from(be32(traf, p + i * per));
                            }
                        }
                    }
                    _ => {}
                }
                t += s;
            }
            if track == 1 {
                return sum;
            }
        }
        off += size;
    }
    0
}

/// Reconciles a row left `recording` by a crash with its file: truncates the partial tail,
/// sets duration and size from what is whole, marks it `recovered` (or `missing`).
pub async fn recover(store: &DynStore, root: &Path, r: &Recording) -> Result<Recording> {
    let path = root.join(&r.path);
    let now = Utc::now();
    let Ok(data) = std::fs::read(&path) else {
        return store
            .finish_recording(
                r.id,
                RecordingEnd {
                    end_time: r.start_time,
                    duration_sec: 0.0,
                    file_size: 0,
                    status: RecordingStatus::Missing,
                    note: Some("the file is gone".into()),
                },
            )
            .await;
    };
    let s = salvage(&data);
    if s.good_len < data.len() as u64 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        f.set_len(s.good_len)
            .map_err(|e| Error::internal(format!("truncate {}: {e}", path.display())))?;
        f.sync_all().ok();
    }
    let _ = now;
    store
        .finish_recording(
            r.id,
            RecordingEnd {
                end_time: r.start_time
                    + chrono::Duration::milliseconds((s.seconds * 1000.0) as i64),
                duration_sec: (s.seconds * 1000.0).round() / 1000.0,
                file_size: s.good_len,
                status: RecordingStatus::Recovered,
                note: Some(format!(
                    "vigia stopped while writing; {} partial bytes cut",
                    data.len() as u64 - s.good_len
                )),
            },
        )
        .await
}
