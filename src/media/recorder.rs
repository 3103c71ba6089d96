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

use super::error::{Error, Result};
use super::fmp4::{self, TrackKind};
use super::frame::{Event, Tracks};
use super::mux::Muxer;
use crate::store::{DynStore, NewRecording, Recording, RecordingEnd, RecordingStatus};

/// Totals over every recording (benchmarks, `/stats`): frames taken from the camera, frames
/// and payload bytes written, and file bytes (payload plus boxes).
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: std::sync::atomic::AtomicU64,
    pub frames_out: std::sync::atomic::AtomicU64,
    pub payload_out: std::sync::atomic::AtomicU64,
    pub file_bytes: std::sync::atomic::AtomicU64,
    pub fragments: std::sync::atomic::AtomicU64,
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
    path_with(camera, start, &hex::encode(rand::random::<[u8; 4]>()))
}

/// `<camera>/<yyyy>/<mm>/<dd>/<HHMMSS>-<suffix>.mp4` (UTC): the layout of every recording file.
pub fn path_with(camera: &str, start: DateTime<Utc>, suffix: &str) -> String {
    format!(
        "{camera}/{:04}/{:02}/{:02}/{:02}{:02}{:02}-{suffix}.mp4",
        start.year(),
        start.month(),
        start.day(),
        start.hour(),
        start.minute(),
        start.second(),
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
        .map_err(|source| Error::Task {
            context: "a recording's file task ended without an answer".into(),
            source,
        })
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
                return Err(Error::NoStorage {
                    context: format!("cannot write {}", self.path.display()),
                    source: e,
                });
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
            Counters::add(&self.counters.fragments, 1);
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<()> {
        let file = self.file.clone();
        let started = Instant::now();
        blocking(move || file.sync_data())
            .await?
            .map_err(|e| Error::io(format!("fdatasync {}", self.path.display()), e))?;
        crate::metrics::FSYNC.observe_since(started);
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
    let fail = |source: std::io::Error| Error::NoStorage {
        context: format!("cannot create {}", path.display()),
        source,
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
        (Err(e), _, _) | (_, Err(e), _) => Some(e.chain()),
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

/// One recording session's state: the file being written (none until the first video), the
/// row reserved for it, and the seconds of earlier files of this session.
struct Session {
    store: DynStore,
    plan: RecordingPlan,
    /// The row made when the recording was asked for; its file opens with the first video.
    reserved: Option<Recording>,
    cur: Option<File>,
    /// Video seconds in the session's files already closed.
    total: f64,
    current: watch::Sender<i64>,
}

impl Session {
    /// A new init: the same parameters go on in the same file (the muxer keeps its
    /// timeline); new ones close it and open the next.
    async fn start(&mut self, tracks: Arc<Tracks>) -> Result<()> {
        // built here only to compare: `open` builds the one it writes
        let same = |f: &File| f.init == fmp4::init_segment(&tracks.infos());
        if self.cur.as_ref().is_some_and(same) {
            return Ok(());
        }
        if let Some(f) = self.cur.take() {
            self.total += f.written;
            let note = "the camera's parameters changed; continued in the next file";
            close(
                &self.store,
                f,
                RecordingStatus::Completed,
                Some(note.into()),
            )
            .await?;
        }
        let f = open(
            &self.store,
            &self.plan,
            &tracks,
            Utc::now(),
            self.reserved.take(),
        )
        .await?;
        self.current.send_replace(f.row.id);
        info!(camera = %self.plan.camera_id, recording = f.row.id, path = %f.path.display(), "recording started");
        self.cur = Some(f);
        Ok(())
    }

    /// One frame: a continuous recording rotates at a key frame past its segment; a fragment
    /// is written every `fragment` of video; a fixed recording is done at its duration.
    async fn frame(&mut self, fr: super::frame::Frame) -> Result<Option<Ending>> {
        let plan = &self.plan;
        let Some(open_file) = self.cur.as_ref() else {
            return Ok(None);
        };
        Counters::add(&plan.counters.frames_in, 1);
        let key = fr.kind == TrackKind::Video && fr.keyframe;
        let rotate = key
            && plan.duration.is_none()
            && open_file.written + open_file.muxer.video_done() >= plan.segment.as_secs_f64();
        if let Some(f) = self.cur.take_if(|_| rotate) {
            let tracks = f.muxer.tracks.clone();
            self.total += f.written;
            close(&self.store, f, RecordingStatus::Completed, None).await?;
            let mut nf = open(&self.store, plan, &tracks, fr.wall, None).await?;
            self.current.send_replace(nf.row.id);
            nf.muxer.push(fr);
            self.cur = Some(nf);
            return Ok(None);
        }
        let Some(f) = self.cur.as_mut() else {
            return Ok(None);
        };
        let video = fr.kind == TrackKind::Video;
        f.muxer.push(fr);
        if video && f.muxer.video_buffered() >= plan.fragment.as_secs_f64() {
            f.write_fragment(true).await?;
            if f.last_sync.elapsed() >= plan.sync_every {
                f.sync().await?;
            }
        }
        Ok(plan
            .duration
            .filter(|d| self.total + f.written >= d.as_secs_f64())
            .map(|_| Ending::Done))
    }

    /// Closes the file being written, and the reserved row if no video ever came.
    async fn finish(self, ending: &Ending) {
        let camera = &self.plan.camera_id;
        if let Some(f) = self.cur {
            let (status, note) = match ending {
                Ending::Done => (RecordingStatus::Completed, None),
                Ending::Stopped(why) => (RecordingStatus::Stopped, Some(why.clone())),
            };
            if let Err(e) = close(&self.store, f, status, note).await {
                warn!(camera = %camera, error = %e.chain(), "could not finish the recording row");
            }
        }
        if let Some(r) = self.reserved {
            // no video ever came: the row says so, there is no file
            let why = match ending {
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
            if let Err(e) = self.store.finish_recording(r.id, end).await {
                warn!(camera = %camera, error = %e.chain(), "could not finish the recording row");
            }
        }
    }
}

/// Runs one recording session from the camera's events until it ends. `current` carries the
/// id of the row being written.
pub async fn run(
    store: DynStore,
    plan: RecordingPlan,
    mut events: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<Option<String>>,
    reserved: Recording,
    current: watch::Sender<i64>,
) -> Ending {
    let mut s = Session {
        store,
        plan,
        reserved: Some(reserved),
        cur: None,
        total: 0.0,
        current,
    };
    let ending = loop {
        let ev = tokio::select! {
            _ = stop.changed() => break Ending::Stopped(stop.borrow().clone().unwrap_or_else(|| "stopped".into())),
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break Ending::Stopped("the camera session ended".into()),
            },
        };
        let step = match ev {
            Event::Start(tracks) => s.start(tracks).await.map(|()| None),
            Event::Frame(fr) => s.frame(fr).await,
        };
        match step {
            Ok(None) => {}
            Ok(Some(e)) => break e,
            Err(e) => {
                let why = e.chain();
                warn!(camera = %s.plan.camera_id, error = %why, "recording failed");
                break Ending::Stopped(why);
            }
        }
    };
    s.finish(&ending).await;
    ending
}

/// What crash recovery found in a file: the length of its whole fragments, the video
/// seconds they hold and how many there are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Salvage {
    pub good_len: u64,
    pub seconds: f64,
    /// Whole `moof`+`mdat` pairs after a whole `moov` (0: nothing playable).
    pub fragments: u64,
}

/// The largest `moov` or `moof` recovery reads into memory. Ours are a few KiB (sample
/// entries; one `trun` entry per frame of a ~1 s fragment); a larger one is not ours, or torn.
pub const MAX_META_BOX: u64 = 4 << 20;

/// Walks a file's top-level boxes (ISO/IEC 14496-12 §4.2: 32-bit size, or 1 and a 64-bit
/// `largesize`): `ftyp`, `moov`, then `moof`+`mdat` pairs. Reads box headers, and the bodies of
/// `moov` and `moof` only (each at most [`MAX_META_BOX`]); `mdat` payloads are skipped, so
/// memory stays bounded whatever the file's size. Returns where the last whole pair ends and
/// the video duration up to there (track 1's `trun` durations over its `mdhd` timescale). A
/// box that runs past the end, has size 0 ("to the end": never written by us, so a torn tail
/// of zeros) or an impossible size ends the walk.
pub fn salvage<R: std::io::Read + std::io::Seek>(f: &mut R, len: u64) -> std::io::Result<Salvage> {
    use std::io::SeekFrom;
    let mut off = 0u64;
    let mut out = Salvage {
        good_len: 0,
        seconds: 0.0,
        fragments: 0,
    };
    let mut timescale = None::<u32>;
    let (mut ticks, mut pending_ticks) = (0u64, None::<u64>);
    let mut body = Vec::new();
    while off + 8 <= len {
        let mut h = [0u8; 16];
        f.seek(SeekFrom::Start(off))?;
        f.read_exact(&mut h[..8])?;
        let (mut size, kind) = (
            u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])),
            [h[4], h[5], h[6], h[7]],
        );
        let mut header = 8u64;
        if size == 1 {
            if off + 16 > len {
                break;
            }
            f.read_exact(&mut h[8..16])?;
            size = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            header = 16;
        }
        if size < header || size > len - off {
            break; // size 0, nonsense, or a partial box: the tail a crash left
        }
        let meta = matches!(&kind, b"moov" | b"moof");
        if meta {
            if size - header > MAX_META_BOX {
                break;
            }
            body.clear();
            body.resize((size - header) as usize, 0);
            f.read_exact(&mut body)?;
        }
        match &kind {
            b"moov" => {
                // the first mdhd is the video track's (§8.4.2: version 1 has 64-bit times)
                timescale = Some(
                    body.windows(4)
                        .position(|w| w == b"mdhd")
                        .and_then(|i| {
                            let at = if body.get(i + 4) == Some(&1) {
                                i + 24
                            } else {
                                i + 16
                            };
                            body.get(at..at + 4)
                        })
                        .map_or(90_000, |b| {
                            u32::from_be_bytes([b[0], b[1], b[2], b[3]]).max(1)
                        }),
                );
                out.good_len = off + size;
            }
            b"moof" => pending_ticks = Some(track1_ticks(&body)),
            b"mdat" => {
                if let (Some(_), Some(t)) = (timescale, pending_ticks.take()) {
                    ticks += t;
                    out.fragments += 1;
                    out.good_len = off + size;
                }
            }
            b"ftyp" | b"free" | b"skip" | b"styp" | b"sidx" if pending_ticks.is_none() => {
                out.good_len = off + size;
            }
            _ => break, // something we never write: stop at what is known to be whole
        }
        off += size;
    }
    out.seconds = ticks as f64 / f64::from(timescale.unwrap_or(90_000));
    Ok(out)
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

/// What [`reconcile_file`] did to a file left open by a crash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reconciled {
    /// Cut back to its whole fragments (`cut` bytes of torn tail removed).
    Kept { salvage: Salvage, cut: u64 },
    /// Gone before we looked, or it held no whole fragment (then it is removed).
    Nothing,
}

/// Cuts a file left open by a crash back to its last whole fragment, reading only box headers
/// (see [`salvage`]), so a day-long segment is recovered in a few MiB of memory. A file with
/// no whole fragment holds nothing a player can show and is removed.
pub fn reconcile_file(path: &Path) -> std::io::Result<Reconciled> {
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Reconciled::Nothing),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let s = salvage(
        &mut std::io::BufReader::with_capacity(64 << 10, &mut f),
        len,
    )?;
    if s.fragments == 0 {
        drop(f);
        std::fs::remove_file(path)?;
        return Ok(Reconciled::Nothing);
    }
    if s.good_len < len {
        f.set_len(s.good_len)?;
        f.sync_all()?;
    }
    Ok(Reconciled::Kept {
        salvage: s,
        cut: len - s.good_len,
    })
}

/// Reconciles a row left `recording` by a crash with its file: truncates the partial tail,
/// sets duration and size from what is whole, marks it `recovered` (or `missing` when there
/// is no file or nothing playable in it).
pub async fn recover(store: &DynStore, root: &Path, r: &Recording) -> Result<Recording> {
    let path = root.join(&r.path);
    let p2 = path.clone();
    let done = blocking(move || reconcile_file(&p2))
        .await?
        .map_err(|e| Error::io(format!("recovering {}", path.display()), e))?;
    let end = match done {
        Reconciled::Nothing => RecordingEnd {
            end_time: r.start_time,
            duration_sec: 0.0,
            file_size: 0,
            status: RecordingStatus::Missing,
            note: Some(
                "the file is gone, or vigia stopped before a whole fragment was written".into(),
            ),
        },
        Reconciled::Kept { salvage: s, cut } => RecordingEnd {
            end_time: r.start_time + chrono::Duration::milliseconds((s.seconds * 1000.0) as i64),
            duration_sec: (s.seconds * 1000.0).round() / 1000.0,
            file_size: s.good_len,
            status: RecordingStatus::Recovered,
            note: Some(format!(
                "vigia stopped while writing; {cut} partial bytes cut"
            )),
        },
    };
    Ok(store.finish_recording(r.id, end).await?)
}

/// The recorder without a camera or a network: events go in as the fan-out would deliver
/// them, as fast as the recorder takes them; every duration is media time (the frames'
/// timestamps), so seconds of video are recorded in milliseconds of wall time.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::Frame;
    use crate::store::RecordingFilter;
    use bytes::Bytes;

    /// 25 frames a second on a 90 kHz clock, a key frame every second.
    const TICKS: i64 = 3600;
    const GOP: i64 = 25;
    const CAMERA: &str = "10.0.0.9";

    fn tracks(generation: u64, width: u32) -> Arc<Tracks> {
        crate::media::frame::test_tracks(generation, width, 360)
    }

    /// Video frame `n` of a session whose timestamps start at `base`.
    fn frame(base: i64, n: i64) -> Event {
        Event::Frame(Frame {
            kind: TrackKind::Video,
            pts: base + n * TICKS,
            keyframe: n % GOP == 0,
            data: Bytes::from(vec![0u8; 1000]),
            arrived: Instant::now(),
            wall: Utc::now(),
        })
    }

    struct Rig {
        _dir: tempfile::TempDir,
        root: PathBuf,
        store: DynStore,
        events: mpsc::Sender<Event>,
        stop: watch::Sender<Option<String>>,
        task: tokio::task::JoinHandle<Ending>,
    }

    async fn rig(duration: Option<Duration>, segment: Duration) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let store = crate::store::open(None, dir.path()).await.unwrap();
        let reserved = store
            .create_recording(NewRecording {
                camera_id: CAMERA.into(),
                user_id: None,
                path: relative_path(CAMERA, Utc::now()),
                start_time: Utc::now(),
                continuous: duration.is_none(),
                node: "box".into(),
            })
            .await
            .unwrap();
        let plan = RecordingPlan {
            counters: Arc::default(),
            camera_id: CAMERA.into(),
            user_id: None,
            duration,
            segment,
            sync_every: Duration::from_secs(5),
            fragment: Duration::from_secs(1),
            root: root.clone(),
            node: "box".into(),
            progress: Arc::default(),
        };
        let (events, rx) = mpsc::channel(10_000);
        let (stop, stop_rx) = watch::channel(None);
        let (current, _) = watch::channel(reserved.id);
        let task = tokio::spawn(run(store.clone(), plan, rx, stop_rx, reserved, current));
        Rig {
            _dir: dir,
            root,
            store,
            events,
            stop,
            task,
        }
    }

    impl Rig {
        async fn send(&self, ev: Event) {
            // a recorder that ended (duration reached) no longer takes events
            let _ = self.events.send(ev).await;
        }

        /// `seconds` of video from a session whose timestamps start at `base`.
        async fn video(&self, base: i64, seconds: i64) {
            for n in 0..seconds * GOP {
                self.send(frame(base, n)).await;
            }
        }

        /// Waits until the recorder has taken every event sent (or ended by itself): it then
        /// finishes the last one before it looks at a stop.
        async fn drained(&self) {
            while !self.events.is_closed() && self.events.capacity() < self.events.max_capacity() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        async fn stop(self) -> (Ending, Vec<Recording>, PathBuf, tempfile::TempDir) {
            self.drained().await;
            self.stop.send_replace(Some("stopped by the test".into()));
            let ending = self.task.await.unwrap();
            let all = RecordingFilter {
                camera_ids: None,
                since: None,
                until: None,
                limit: 100,
                offset: 0,
            };
            let mut rows = self.store.recordings(&all).await.unwrap();
            rows.sort_by_key(|r| r.id);
            (ending, rows, self.root, self._dir)
        }
    }

    /// The video seconds in a file, read back from its boxes (not from the row).
    fn seconds_in(root: &Path, r: &Recording) -> f64 {
        let path = root.join(&r.path);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, r.file_size, "{}: row and file agree", r.path);
        let mut f = std::fs::File::open(&path).unwrap();
        let s = salvage(&mut f, len).unwrap();
        assert_eq!(s.good_len, len, "{}: every fragment whole", r.path);
        s.seconds
    }

    #[tokio::test]
    async fn a_continuous_recording_rotates_at_the_first_key_frame_past_the_segment() {
        // segments of 2.5 s with a key frame every second: each file ends at 3 s
        let rig = rig(None, Duration::from_millis(2500)).await;
        rig.send(Event::Start(tracks(1, 640))).await;
        rig.video(0, 7).await;
        let (ending, rows, root, _dir) = rig.stop().await;
        assert_eq!(ending, Ending::Stopped("stopped by the test".into()));
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.status, r.duration_sec, seconds_in(&root, r)))
            .collect();
        // the last file holds what was written when the stop came (whole fragments, and the
        // frames after the last one flushed at close)
        assert_eq!(got.len(), 3, "{got:?}");
        for (status, row, file) in &got[..2] {
            assert_eq!(*status, RecordingStatus::Completed);
            assert!(
                (row - 3.0).abs() < 1e-6 && (file - 3.0).abs() < 1e-6,
                "{got:?}"
            );
        }
        let (status, row, file) = got[2];
        assert_eq!(status, RecordingStatus::Stopped);
        assert!(
            (row - file).abs() < 1e-6 && row > 0.9 && row <= 1.0 + 1e-6,
            "{got:?}"
        );
        assert!(rows.iter().all(|r| r.continuous), "{rows:?}");
    }

    #[tokio::test]
    async fn a_fixed_recording_ends_at_its_duration_in_media_time() {
        let wall = Instant::now();
        let rig = rig(Some(Duration::from_secs(3)), Duration::from_secs(900)).await;
        rig.send(Event::Start(tracks(1, 640))).await;
        // ten seconds of video offered at once: the recorder stops itself at three
        rig.video(0, 10).await;
        let (ending, rows, root, _dir) = rig.stop().await;
        assert_eq!(ending, Ending::Done);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.status, RecordingStatus::Completed);
        let file = seconds_in(&root, r);
        assert!(
            (r.duration_sec - 3.0).abs() <= 0.04 + 1e-6,
            "{}",
            r.duration_sec
        );
        assert!(
            (file - r.duration_sec).abs() < 1e-6,
            "{file} {}",
            r.duration_sec
        );
        assert!(
            wall.elapsed() < Duration::from_secs(3),
            "media time, not wall time"
        );
    }

    #[tokio::test]
    async fn a_reconnect_goes_on_in_the_same_file_and_new_parameters_start_a_new_one() {
        let rig = rig(None, Duration::from_secs(900)).await;
        rig.send(Event::Start(tracks(1, 640))).await;
        rig.video(0, 2).await;
        // the camera came back with the same parameters: its clock starts elsewhere
        rig.send(Event::Start(tracks(2, 640))).await;
        rig.video(5_000_000, 2).await;
        // and again with a new resolution: a file has one init segment
        rig.send(Event::Start(tracks(3, 1280))).await;
        rig.video(77_000, 1).await;
        let (_, rows, root, _dir) = rig.stop().await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        let (a, b) = (&rows[0], &rows[1]);
        assert_eq!(a.status, RecordingStatus::Completed);
        assert_eq!(
            a.note.as_deref(),
            Some("the camera's parameters changed; continued in the next file")
        );
        // both sessions' four seconds, one timeline
        assert!((seconds_in(&root, a) - 4.0).abs() <= 0.04 + 1e-6, "{a:?}");
        assert!((a.duration_sec - 4.0).abs() <= 0.04 + 1e-6, "{a:?}");
        assert_eq!(b.status, RecordingStatus::Stopped);
        assert!(
            b.duration_sec > 0.9 && b.duration_sec <= 1.0 + 1e-6,
            "{b:?}"
        );
        assert!((seconds_in(&root, b) - b.duration_sec).abs() < 1e-6);
    }
}
