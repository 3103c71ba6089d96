//! LL-HLS from RAM (RFC 8216bis): per camera, a window of fMP4 segments made of parts.
//!
//! - Segments are cut only at video key frames, once they hold at least the target duration
//!   (a camera with a long GOP gets longer segments); parts close at about
//!   [`HlsConfig::part_hint`]. `PART-TARGET` is fixed when the first part is published
//!   (§4.4.3.7, it must not change), at the hint plus one frame.
//! - In LL-HLS a fresh window's first GOP is cut into small whole segments, one part each
//!   (the first one half the hint long), so the first playlist is ready about 0.2 s after the
//!   camera's first key frame rather than a GOP later. Players need a whole segment (hls.js
//!   calls a playlist of parts only empty: `levelEmptyError`), and hls.js loads a part only at
//!   a key frame or right after a part it loaded, so the parts of a segment that begins between
//!   key frames would wait for the segment to end; whole segments are loaded one after the
//!   other. No part (and no hint) is listed meanwhile: a playlist ending with a whole segment's
//!   last part made hls.js load that part again in a loop (its audio ends a little before its
//!   video). The next GOP's first part is a whole segment of its own too, and from its
//!   publication on every recent segment lists its parts, the first GOP's too: hls.js turns part
//!   loading on when the part list reaches behind the segment it is about to load, and that
//!   segment begins with a key frame, so it is loaded as a part and the parts after it follow
//!   (had it been the first part of a segment still being built, hls.js would have waited for
//!   that segment to end: a stall of up to a GOP). The rest of that GOP is one segment, ended
//!   at the next key frame. While segments that begin between key frames are in the window the
//!   playlist says where a player joining now must start (`EXT-X-START`, §4.4.2.2): at the
//!   newest key frame at least `PART-HOLD-BACK` behind the live edge, where it would start
//!   anyway had every segment begun with a key frame (else hls.js appended frames a decoder
//!   cannot start from: `bufferAppendNoProgress`).
//! - A segment is the concatenation of its parts' `moof`+`mdat` pairs, so both are served from
//!   the same buffers.
//! - A new init (reconnect, new parameters) or a timestamp jump starts a new segment marked
//!   `EXT-X-DISCONTINUITY` (§4.4.2.3), with its own `EXT-X-MAP`.
//! - The window keeps at least three target durations of segments (§6.2.2).
//! - Playlist requests with `_HLS_msn`/`_HLS_part` block until that part exists (bounded),
//!   §6.2.5.2; requests further ahead than the next segment get 400. The part named by
//!   `EXT-X-PRELOAD-HINT` can be requested before it exists and is answered when it does.
//! - With `LOW_LATENCY_HLS=false` the playlist is plain HLS (no parts, no blocking).
//!
//! Nothing here touches the disk.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use super::error::{Error, Result};
use super::fmp4::{self, TrackKind};
use super::frame::{Event, Frame, Tracks};
use super::mux::{Muxed, Muxer};
use super::segbuf::{Pool, SegmentBuffer, POOL};

#[derive(Debug, Clone, Copy)]
pub struct HlsConfig {
    pub low_latency: bool,
    /// Minimum segment duration, seconds.
    pub segment_target: f64,
    /// Parts close once they hold this much video, seconds.
    pub part_hint: f64,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            low_latency: true,
            segment_target: 2.0,
            part_hint: 0.3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Part {
    /// The part's `moof`+`mdat`, in its segment's buffer.
    pub data: Bytes,
    pub duration: f64,
    pub independent: bool,
}

#[derive(Debug)]
struct Segment {
    msn: u64,
    parts: Vec<Part>,
    discontinuity: bool,
    generation: u64,
    start: DateTime<Utc>,
    complete: bool,
    /// The buffer its parts are slices of, once it is whole (see [`super::segbuf`]).
    buffer: SegmentBuffer,
}

impl Segment {
    fn duration(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum()
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum()
    }
}

struct Window {
    muxer: Option<Muxer>,
    inits: Vec<(u64, Bytes)>,
    segments: VecDeque<Segment>,
    next_msn: u64,
    discontinuity_seq: u64,
    pending_discontinuity: bool,
    /// Fixed when the first part is published (§4.4.3.7: it must not change): a part
    /// closes once it holds `part_hint`, so it is at most the hint plus one frame.
    part_target: Option<f64>,
    /// Wall-clock time of the first frame of the segment being built.
    next_start: Option<DateTime<Utc>>,
    /// The buffer the segment being built is written into (its parts are slices of it);
    /// between segments, the buffer of the segment that last left the window, which the next
    /// segment reuses.
    buf: SegmentBuffer,
    /// Frames are dropped until a video key frame (after a start or a jump).
    waiting_key: bool,
    /// How a fresh window's first GOPs are cut (see the module header).
    opening: Opening,
    version: u64,
    /// When the newest video frame arrived, and how long parts took to be published after
    /// their last frame arrived (µs, the most recent [`LATENCY_SAMPLES`]).
    last_video_arrival: Option<std::time::Instant>,
    publish_us: VecDeque<u32>,
}

/// How segments are cut while a fresh window opens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Opening {
    /// In the first GOP (seconds of it so far): each part is a segment of its own.
    FirstGop(f64),
    /// The first GOP ended at a key frame; the next part is a segment of its own too, and until
    /// it is published no part is listed.
    GopEnded,
    /// The segment being built began between key frames: it ends at the next key frame.
    MidGop,
    /// Segments end at key frames once they are long enough.
    #[default]
    Done,
}

impl Opening {
    /// Whether parts (and the preload hint) stay out of the playlist.
    fn hides_parts(self) -> bool {
        matches!(self, Opening::FirstGop(_) | Opening::GopEnded)
    }
}

/// Publish latencies kept per camera.
const LATENCY_SAMPLES: usize = 512;

/// One camera's live window.
pub struct Hls {
    cfg: HlsConfig,
    /// Where segment buffers come from and go back to.
    pool: &'static Pool,
    w: Mutex<Window>,
    changed: watch::Sender<u64>,
}

/// Seconds with three decimals, as a playlist writes them (integer formatting: a float's exact
/// decimal formatting was 40 % of rendering a playlist).
struct Ms(f64);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = (self.0.max(0.0) * 1000.0).round() as u64;
        write!(f, "{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// The first segment whose parts a playlist lists: those within the last three target
/// durations.
fn parts_from(w: &Window, target: u64) -> u64 {
    let mut recent = 0.0;
    let mut from = u64::MAX;
    for seg in w.segments.iter().rev() {
        from = seg.msn;
        recent += seg.duration();
        if recent >= 3.0 * target as f64 {
            break;
        }
    }
    from
}

/// The end of an LL-HLS playlist: the map of a new init the next part belongs to (after the
/// last segment listed with `map_gen`), and the preload hint for the next part.
fn preload_hint(s: &mut String, w: &Window, map_gen: Option<u64>, q: &str) {
    let (msn, idx) = match w.segments.back() {
        Some(seg) if !seg.complete => (seg.msn, seg.parts.len()),
        _ => (w.next_msn, 0),
    };
    if let Some(g) = w.muxer.as_ref().map(|m| m.tracks.generation) {
        if map_gen != Some(g) {
            // the next part belongs to a new init: a player must see the map first
            let _ = writeln!(
                s,
                "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-{g}.mp4{q}\""
            );
        }
    }
    if !w.opening.hides_parts() {
        let _ = writeln!(
            s,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{msn}.{idx}.m4s{q}\""
        );
    }
}

/// Where a player joining now should start, in seconds from the window's first segment, while
/// the window holds a segment that does not begin with a key frame (the first GOP's one-part
/// segments): the newest key frame at least `hold_back` behind the live edge, or the oldest one.
/// `None` when every segment begins with a key frame: players find that start themselves.
/// A positive offset (from the start) reads the same to every player; a negative one is
/// counted from the last whole segment by the RFC but from the last part by hls.js.
fn start_offset(w: &Window, hold_back: f64) -> Option<f64> {
    if w.segments
        .iter()
        .all(|s| s.parts.first().is_none_or(|p| p.independent))
    {
        return None;
    }
    let parts = || w.segments.iter().flat_map(|s| s.parts.iter());
    let target = parts().map(|p| p.duration).sum::<f64>() - hold_back;
    let mut at = 0.0;
    let mut start = None;
    for p in parts() {
        if p.independent && (start.is_none() || at <= target) {
            start = Some(at);
        }
        at += p.duration;
    }
    start
}

/// The files of a live window, by name: `init-<gen>.mp4`, `seg<msn>.m4s`, `part<msn>.<i>.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileName {
    Init(u64),
    Segment(u64),
    Part(u64, u64),
}

impl FileName {
    fn parse(name: &str) -> Option<FileName> {
        let num = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())?
        };
        if let Some(r) = name.strip_prefix("init-") {
            return r.strip_suffix(".mp4").and_then(num).map(FileName::Init);
        }
        let r = name.strip_suffix(".m4s")?;
        if let Some(r) = r.strip_prefix("part") {
            let (m, i) = r.split_once('.')?;
            return Some(FileName::Part(num(m)?, num(i)?));
        }
        r.strip_prefix("seg").and_then(num).map(FileName::Segment)
    }
}

/// A file of the window, as buffers to send (its name never names other bytes: players may
/// cache it for good).
pub struct HlsFile {
    pub content_type: &'static str,
    pub chunks: Vec<Bytes>,
}

/// The media type of segments and parts (RFC 8216bis §3.3).
const SEGMENT_TYPE: &str = "video/iso.segment";

/// A segment is closed at this length even without a key frame.
const MAX_SEGMENT_SECS: f64 = 20.0;

/// Most seconds a request waits for a part or a blocking playlist reload.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Most seconds the first playlist request waits for the first segment (camera connect,
/// then a segment's worth of video).
const FIRST_WAIT: Duration = Duration::from_secs(20);

impl Hls {
    pub fn new(cfg: HlsConfig) -> Hls {
        Hls::with_pool(cfg, &POOL)
    }

    fn with_pool(cfg: HlsConfig, pool: &'static Pool) -> Hls {
        let (changed, _) = watch::channel(0);
        Hls {
            cfg,
            pool,
            w: Mutex::new(Window {
                muxer: None,
                inits: Vec::new(),
                segments: VecDeque::new(),
                next_msn: 0,
                discontinuity_seq: 0,
                pending_discontinuity: false,
                part_target: None,
                next_start: None,
                buf: SegmentBuffer::default(),
                waiting_key: true,
                opening: Opening::Done,
                version: 0,
                last_video_arrival: None,
                publish_us: VecDeque::new(),
            }),
            changed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.w.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds one event of the camera's fan-out.
    pub fn push(&self, ev: Event) {
        let mut w = self.lock();
        let before = w.version;
        match ev {
            Event::Start(tracks) => self.start(&mut w, tracks),
            Event::Frame(f) => self.frame(&mut w, f),
        }
        if w.version != before {
            let v = w.version;
            drop(w);
            self.changed.send_replace(v);
        }
    }

    fn start(&self, w: &mut Window, tracks: Arc<Tracks>) {
        self.close_segment(w);
        let had_media = w.muxer.is_some() || !w.segments.is_empty();
        let seq = w.muxer.as_ref().map_or(1, Muxer::next_sequence);
        w.inits
            .push((tracks.generation, fmp4::init_segment(&tracks.infos())));
        w.muxer = Some(Muxer::new(tracks, seq));
        w.pending_discontinuity = had_media;
        w.waiting_key = true;
    }

    fn frame(&self, w: &mut Window, f: Frame) {
        if w.muxer.is_none() {
            return;
        }
        let video = f.kind == TrackKind::Video;
        if w.waiting_key {
            if !(video && f.keyframe) {
                return;
            }
            w.waiting_key = false;
        }
        let key = video && f.keyframe;
        let wall = f.wall;
        if video {
            w.last_video_arrival = Some(f.arrived);
        }
        let Some(m) = w.muxer.as_mut() else { return };
        // pushing completes the previous frame; the new one stays pending
        let pushed = m.push(f);
        // a key frame closes the segment once it is long enough, and starts the next; a
        // camera that sends no key frames still gets its segments closed (memory is bounded)
        if !pushed.jump {
            let current = w
                .segments
                .back()
                .filter(|s| !s.complete)
                .map_or(0.0, Segment::duration);
            let done = w.muxer.as_ref().map_or(0.0, Muxer::video_done);
            if (key && (w.opening != Opening::Done || current + done >= self.cfg.segment_target))
                || current + done >= MAX_SEGMENT_SECS
            {
                // the frames before the key frame end the first GOP's one-part segments
                self.close_segment(w);
                w.opening = if w.opening.hides_parts() {
                    Opening::GopEnded
                } else {
                    Opening::Done
                };
            }
        }
        if w.next_start.is_none() {
            w.next_start = Some(wall);
        }
        if pushed.jump {
            // timestamps jumped: what came before ends here, a discontinuity follows
            self.close_segment(w);
            w.pending_discontinuity = true;
            // the frame after the jump starts the next segment only if it is a key frame
            if let Some(m) = w.muxer.as_mut() {
                let tracks = m.tracks.clone();
                let seq = m.next_sequence();
                *m = Muxer::new(tracks, seq);
            }
            w.waiting_key = true;
            return;
        }
        if video && self.cfg.low_latency {
            self.publish_part_if_due(w);
        }
    }

    /// A part is published as soon as its last frame is here: the waiting frames go in with
    /// an estimated duration, corrected by the next frame. In a fresh window's first GOP each
    /// part is a segment of its own (the first half the hint long), whole at once, and so is
    /// the next GOP's first part; `start_offset` points players joining meanwhile at a key
    /// frame.
    fn publish_part_if_due(&self, w: &mut Window) {
        let fresh = w.segments.is_empty();
        let hint = if fresh {
            self.cfg.part_hint / 2.0
        } else {
            self.cfg.part_hint
        };
        if w.muxer.as_ref().is_some_and(|m| m.video_buffered() >= hint) {
            if let Some(m) = w.muxer.as_mut() {
                m.complete_pending();
            }
            if fresh {
                w.opening = Opening::FirstGop(0.0);
            }
            self.flush_part(w);
            match w.opening {
                Opening::GopEnded => {
                    self.seal_segment(w);
                    w.opening = Opening::MidGop;
                }
                Opening::FirstGop(secs) => {
                    let secs = secs + w.segments.back().map_or(0.0, Segment::duration);
                    self.seal_segment(w);
                    // a camera that sends no second key frame gets normal segments again
                    w.opening = if secs < MAX_SEGMENT_SECS {
                        Opening::FirstGop(secs)
                    } else {
                        Opening::Done
                    };
                }
                Opening::MidGop | Opening::Done => {}
            }
        }
    }

    /// Moves the muxer's complete samples into a part of the current segment.
    fn flush_part(&self, w: &mut Window) {
        let Some(m) = w.muxer.as_mut() else { return };
        if !m.has_video() {
            return;
        }
        let Some(Muxed {
            fragment,
            duration,
            independent,
        }) = m.flush()
        else {
            return;
        };
        let generation = m.tracks.generation;
        let open = w.segments.back().is_some_and(|s| !s.complete);
        if !open {
            // room for the largest segment in the window and a quarter more (the pool rounds it
            // up to a power of two; pages never written to are not resident)
            let largest = w.segments.iter().map(Segment::bytes).max().unwrap_or(0);
            w.buf = self
                .pool
                .take_or_reuse(std::mem::take(&mut w.buf), largest + largest / 4);
            let msn = w.next_msn;
            w.next_msn += 1;
            let discontinuity = std::mem::take(&mut w.pending_discontinuity);
            let start = w.next_start.take().unwrap_or_else(Utc::now);
            w.segments.push_back(Segment {
                msn,
                parts: Vec::new(),
                discontinuity,
                generation,
                start,
                complete: false,
                buffer: SegmentBuffer::default(),
            });
        }
        let data = w.buf.push(self.pool, &fragment.chunks, fragment.len);
        if let Some(seg) = w.segments.back_mut() {
            seg.parts.push(Part {
                data,
                duration,
                independent,
            });
        }
        if let Some(t) = w.last_video_arrival {
            if w.publish_us.len() == LATENCY_SAMPLES {
                w.publish_us.pop_front();
            }
            let took = t.elapsed();
            crate::metrics::PART_PUBLISH.observe(took);
            w.publish_us
                .push_back(took.as_micros().min(u128::from(u32::MAX)) as u32);
        }
        if w.part_target.is_none() {
            let frame = w.muxer.as_ref().map_or(0.0, Muxer::video_frame_secs);
            let target = duration.max(self.cfg.part_hint + frame);
            w.part_target = Some((target * 1000.0).ceil() / 1000.0);
        }
        w.version += 1;
    }

    /// Ends the segment being built (flushing what the muxer holds) and trims the window.
    fn close_segment(&self, w: &mut Window) {
        if let Some(m) = w.muxer.as_mut() {
            m.complete_pending_audio();
        }
        self.flush_part(w);
        self.seal_segment(w);
    }

    /// Marks the segment being built whole and trims the window.
    fn seal_segment(&self, w: &mut Window) {
        let Some(seg) = w.segments.back_mut() else {
            return;
        };
        if seg.complete {
            return;
        }
        seg.complete = true;
        w.next_start = None;
        // the buffer goes with the segment, and back to the pool when it leaves the window
        seg.buffer = std::mem::take(&mut w.buf);
        // keep at least three target durations, not counting the newest segment
        let target = self.target_duration(w) as f64;
        while w.segments.len() > 4 {
            let rest: f64 = w
                .segments
                .iter()
                .skip(1)
                .filter(|s| s.complete)
                .map(Segment::duration)
                .sum();
            if rest - w.segments.back().map_or(0.0, Segment::duration) < 3.0 * target {
                break;
            }
            if let Some(old) = w.segments.pop_front() {
                if old.discontinuity {
                    w.discontinuity_seq += 1;
                }
                // kept for this window's next segment: every camera's segments leave their
                // windows at once when the cameras started together, more than a shared pool
                // would hold until the next segments begin
                self.pool.recycle(std::mem::replace(&mut w.buf, old.buffer));
            }
        }
        let oldest_gen = w.segments.front().map_or(u64::MAX, |s| s.generation);
        let newest_gen = w.muxer.as_ref().map(|m| m.tracks.generation);
        w.inits
            .retain(|(g, _)| *g >= oldest_gen || Some(*g) == newest_gen);
        w.version += 1;
    }

    fn target_duration(&self, w: &Window) -> u64 {
        let longest = w
            .segments
            .iter()
            .map(Segment::duration)
            .fold(self.cfg.segment_target, f64::max);
        longest.ceil() as u64
    }

    /// Empties the window (nobody watches); the next `Start` begins a new one.
    pub fn clear(&self) {
        let mut w = self.lock();
        w.muxer = None;
        w.inits.clear();
        for seg in w.segments.drain(..) {
            self.pool.recycle(seg.buffer);
        }
        self.pool.recycle(std::mem::take(&mut w.buf));
        w.pending_discontinuity = false;
        w.waiting_key = true;
        w.opening = Opening::Done;
        w.next_start = None;
        w.version += 1;
    }

    /// Whether at least one complete segment exists.
    pub fn ready(&self) -> bool {
        self.lock().segments.iter().any(|s| s.complete)
    }

    /// Waits until `pred` holds for the window, at most `limit`.
    async fn wait_for(&self, limit: Duration, mut pred: impl FnMut(&Window) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if pred(&self.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return pred(&self.lock()),
            }
        }
    }

    /// The media playlist; `query` (e.g. `?t=…`) is appended to every URI.
    pub async fn playlist(
        &self,
        msn: Option<u64>,
        part: Option<u64>,
        query: &str,
    ) -> Result<String> {
        if part.is_some() && msn.is_none() {
            return Err(Error::Invalid("_HLS_part needs _HLS_msn".into()));
        }
        let ll = self.cfg.low_latency;
        if !self
            .wait_for(FIRST_WAIT, |w| {
                // players need a whole segment (hls.js calls a playlist of parts only empty);
                // in LL-HLS a playlist that ends exactly at a segment boundary, with no part of
                // the next segment yet, makes hls.js re-load the last part in a loop, so the
                // segment being built must have a part too, unless no part is listed at all
                // (a fresh window's first GOP: its first segment is whole ~0.16 s after the
                // key frame, see `frame`)
                w.segments.iter().any(|s| s.complete)
                    && (!ll
                        || w.opening.hides_parts()
                        || w.segments
                            .back()
                            .is_some_and(|s| !s.complete && !s.parts.is_empty()))
            })
            .await
        {
            return Err(Error::NotReady(
                "the camera has not produced a segment yet; retry".into(),
            ));
        }
        if let (Some(m), true) = (msn, self.cfg.low_latency) {
            let next = self.lock().next_msn;
            if m > next + 1 {
                return Err(Error::Invalid(format!(
                    "_HLS_msn={m} is too far ahead of the live edge ({next})"
                )));
            }
            let p = part.unwrap_or(0);
            let wait = MAX_WAIT.min(Duration::from_secs(
                3 * self.target_duration(&self.lock()).max(1),
            ));
            self.wait_for(wait, |w| {
                w.segments
                    .iter()
                    .any(|s| s.msn > m || (s.msn == m && (s.parts.len() as u64 > p || s.complete)))
            })
            .await;
        }
        Ok(self.render(&self.lock(), query))
    }

    fn render(&self, w: &Window, q: &str) -> String {
        let ll = self.cfg.low_latency;
        let target = self.target_duration(w);
        let part_target = w.part_target.unwrap_or(self.cfg.part_hint);
        // every part and segment line carries the query (the player token): room for them all
        let lines: usize = w.segments.iter().map(|s| s.parts.len() + 3).sum();
        let mut s = String::with_capacity(512 + lines * (64 + q.len()));
        s.push_str("#EXTM3U\n");
        let _ = writeln!(s, "#EXT-X-VERSION:{}", if ll { 9 } else { 7 });
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{target}");
        if ll {
            let hold_back = 3.0 * part_target;
            let _ = writeln!(
                s,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
                Ms(hold_back)
            );
            let _ = writeln!(s, "#EXT-X-PART-INF:PART-TARGET={}", Ms(part_target));
            if let Some(offset) = start_offset(w, hold_back) {
                let _ = writeln!(s, "#EXT-X-START:TIME-OFFSET={},PRECISE=YES", Ms(offset));
            }
        }
        let first = w.segments.front().map_or(0, |s| s.msn);
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if w.discontinuity_seq > 0 {
            let _ = writeln!(s, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", w.discontinuity_seq);
        }
        let parts_from = parts_from(w, target);
        let mut map_gen = None;
        for seg in &w.segments {
            if !ll && !seg.complete {
                break;
            }
            if seg.discontinuity && map_gen.is_some() {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map_gen != Some(seg.generation) {
                let _ = writeln!(s, "#EXT-X-MAP:URI=\"init-{}.mp4{q}\"", seg.generation);
                map_gen = Some(seg.generation);
            }
            let _ = writeln!(
                s,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                seg.start.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
            // no part is listed in a fresh window's first GOP (see the module header)
            if ll && seg.msn >= parts_from && !w.opening.hides_parts() {
                for (i, p) in seg.parts.iter().enumerate() {
                    let _ = write!(
                        s,
                        "#EXT-X-PART:DURATION={},URI=\"part{}.{i}.m4s{q}\"",
                        Ms(p.duration),
                        seg.msn
                    );
                    s.push_str(if p.independent {
                        ",INDEPENDENT=YES\n"
                    } else {
                        "\n"
                    });
                }
            }
            if seg.complete {
                let _ = writeln!(s, "#EXTINF:{},", Ms(seg.duration()));
                let _ = writeln!(s, "seg{}.m4s{q}", seg.msn);
            }
        }
        if ll {
            preload_hint(&mut s, w, map_gen, q);
        }
        s
    }

    /// A file of the window by name: `init-<g>.mp4`, `seg<msn>.m4s`, `part<msn>.<i>.m4s`.
    /// Anything else is 404. The part the preload hint names is awaited (bounded).
    pub async fn file(&self, name: &str) -> Result<HlsFile> {
        let nf = || Error::NotFound(format!("{name} is not in the live window"));
        let segment = |chunks| HlsFile {
            content_type: SEGMENT_TYPE,
            chunks,
        };
        match FileName::parse(name).ok_or_else(nf)? {
            FileName::Init(gen) => {
                let w = self.lock();
                let (_, init) = w.inits.iter().find(|(g, _)| *g == gen).ok_or_else(nf)?;
                Ok(HlsFile {
                    content_type: "video/mp4",
                    chunks: vec![init.clone()],
                })
            }
            FileName::Segment(msn) => {
                let w = self.lock();
                let seg = w
                    .segments
                    .iter()
                    .find(|s| s.msn == msn && s.complete)
                    .ok_or_else(nf)?;
                Ok(segment(seg.parts.iter().map(|p| p.data.clone()).collect()))
            }
            FileName::Part(_, _) if !self.cfg.low_latency => Err(nf()),
            FileName::Part(msn, idx) => self.part(msn, idx).await.map(segment).ok_or_else(nf),
        }
    }

    /// Part `idx` of segment `msn`: from the window, or, when it is the part the preload hint
    /// names (or the one after), once it is published (at most [`MAX_WAIT`]).
    async fn part(&self, msn: u64, idx: u64) -> Option<Vec<Bytes>> {
        let find = |w: &Window| {
            w.segments
                .iter()
                .find(|s| s.msn == msn)
                .and_then(|s| s.parts.get(idx as usize))
                .map(|p| vec![p.data.clone()])
        };
        if let Some(chunks) = find(&self.lock()) {
            return Some(chunks);
        }
        let upcoming = {
            let w = self.lock();
            match w.segments.back() {
                Some(s) if !s.complete => {
                    msn == s.msn && idx as usize <= s.parts.len() + 1
                        || msn == s.msn + 1 && idx == 0
                }
                _ => msn == w.next_msn && idx <= 1,
            }
        };
        if upcoming && self.wait_for(MAX_WAIT, |w| find(w).is_some()).await {
            return find(&self.lock());
        }
        None
    }

    /// Recent part publish latencies in µs (last frame of a part received → part listed).
    pub fn publish_latencies(&self) -> Vec<u32> {
        self.lock().publish_us.iter().copied().collect()
    }

    /// Bytes held by the window (for stats).
    pub fn bytes(&self) -> usize {
        let w = self.lock();
        w.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .map(|p| p.data.len())
            .sum::<usize>()
            + w.inits.iter().map(|(_, b)| b.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn seconds_are_written_with_three_decimals() {
        let w = |x: f64| Ms(x).to_string();
        assert_eq!(w(2.0), "2.000");
        assert_eq!(w(0.3336), "0.334");
        assert_eq!(w(0.0404), "0.040");
        assert_eq!(w(11.9996), "12.000");
        assert_eq!(w(1.0 / 3.0), format!("{:.3}", 1.0 / 3.0));
        assert_eq!(w(-0.5), "0.000");
    }

    fn tracks(generation: u64) -> Arc<Tracks> {
        crate::media::frame::test_tracks(generation, 320, 240)
    }

    /// 25 fps, a key frame every `gop` frames, frames numbered from `from`.
    fn feed(h: &Hls, from: i64, n: i64, gop: i64, pts0: i64) {
        feed_sized(h, from, n, gop, pts0, 100);
    }

    /// Video frames `from..from + n` at 25 fps, a key frame every `gop`, `size` bytes each.
    fn feed_sized(h: &Hls, from: i64, n: i64, gop: i64, pts0: i64, size: usize) {
        for i in from..from + n {
            h.push(Event::Frame(Frame {
                kind: TrackKind::Video,
                pts: pts0 + i * 3600,
                keyframe: i % gop == 0,
                data: Bytes::from(vec![i as u8; size]),
                arrived: Instant::now(),
                wall: Utc::now(),
            }));
        }
    }

    #[tokio::test]
    async fn segments_cut_at_key_frames_with_parts() {
        let h = Hls::new(HlsConfig::default());
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 250, 25, 0); // 10 s, 1 s GOP
        let pl = h.playlist(None, None, "?t=abc").await.unwrap();
        assert!(
            pl.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"),
            "{pl}"
        );
        assert!(
            pl.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.020"),
            "{pl}"
        );
        // the hint (0.3 s) plus one frame: no part of 0.32 s, jitter or not, can exceed it
        assert!(pl.contains("#EXT-X-PART-INF:PART-TARGET=0.340"), "{pl}");
        assert!(pl.contains("#EXT-X-MAP:URI=\"init-1.mp4?t=abc\""));
        // the first GOP in one-part segments (0.16, 0.32, 0.32, 0.2 s), the second GOP's first
        // part a segment of its own and the rest of that GOP another, then 2 s each
        assert!(
            pl.contains("#EXTINF:0.200,\nseg3.m4s?t=abc")
                && pl.contains("#EXTINF:0.320,\nseg4.m4s?t=abc")
                && pl.contains("#EXTINF:0.680,\nseg5.m4s?t=abc")
                && pl.contains("#EXTINF:2.000,\nseg6.m4s?t=abc"),
            "{pl}"
        );
        assert!(pl.contains(",INDEPENDENT=YES"));
        assert!(
            pl.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part9.6.m4s?t=abc\""),
            "{pl}"
        );
        assert!(!pl.contains("DISCONTINUITY"));
        // a segment is the concatenation of its parts
        let seg = h.file("seg6.m4s").await.unwrap();
        let mut parts = Vec::new();
        for i in 0..7 {
            match h.file(&format!("part6.{i}.m4s")).await {
                Ok(p) => parts.extend(p.chunks),
                Err(_) => break,
            }
        }
        assert_eq!(seg.chunks, parts);
        assert!(h.file("init-1.mp4").await.is_ok());
        for bad in [
            "../secret",
            "seg3.m4s/..",
            "seg-1.m4s",
            "part3.99.m4s",
            "init-2.mp4",
            "index.m3u8",
            "seg%2e.m4s",
            "seg99999999999999999999.m4s",
        ] {
            assert!(h.file(bad).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_first_playlist_is_ready_a_fifth_of_a_second_after_the_first_key_frame() {
        let h = Arc::new(Hls::new(HlsConfig::default()));
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 3, 50, 0); // 2 s GOP: the first key frame and two frames after it
        assert!(
            tokio::time::timeout(Duration::from_millis(50), h.playlist(None, None, ""))
                .await
                .is_err(),
            "no whole segment yet"
        );
        // the fourth frame fills the first part (0.16 s, half the hint): it goes out with the
        // frame's estimated duration, and is a whole segment
        feed(&h, 3, 1, 50, 0);
        let pl = tokio::time::timeout(Duration::from_millis(200), h.playlist(None, None, ""))
            .await
            .expect("answered without waiting for a GOP")
            .unwrap();
        // a whole first segment of one short part, listed without it (no part of the first GOP
        // is offered to players, and no hint); it is the only place to start
        assert!(pl.contains("#EXTINF:0.160,\nseg0.m4s\n"), "{pl}");
        assert!(
            !pl.contains("#EXT-X-PART:") && !pl.contains("PRELOAD-HINT"),
            "{pl}"
        );
        assert!(!pl.contains("#EXT-X-START"), "{pl}");
        let target = |pl: &str| {
            pl.lines()
                .find(|l| l.starts_with("#EXT-X-PART-INF:"))
                .map(str::to_string)
        };
        let first = target(&pl);
        assert_eq!(first.as_deref(), Some("#EXT-X-PART-INF:PART-TARGET=0.340"));
        // a blocking reload for the next segment waits until it is whole, not for its part
        let next = {
            let h = h.clone();
            tokio::spawn(async move { h.playlist(Some(1), Some(0), "").await })
        };
        feed(&h, 4, 7, 50, 0); // the second segment's frames, not yet whole
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!next.is_finished(), "answered before segment 1 was whole");
        feed(&h, 11, 1, 50, 0); // its eighth frame fills it
        let pl = next.await.unwrap().unwrap();
        assert!(pl.contains("#EXTINF:0.320,\nseg1.m4s\n"), "{pl}");
        // it begins between key frames: a player joining now must start at the key frame
        assert!(
            pl.contains("#EXT-X-START:TIME-OFFSET=0.000,PRECISE=YES\n"),
            "{pl}"
        );
        // 3.4 s in: one-part segments up to the second key frame (2 s); the second GOP's first
        // part is a whole segment too, and the rest of that GOP the segment being built; a
        // player joining now starts at the newest key frame at least PART-HOLD-BACK (1.02 s)
        // behind the edge: the second one
        feed(&h, 13, 75, 50, 0);
        let pl = h.playlist(None, None, "").await.unwrap();
        assert!(pl.contains("#EXTINF:0.240,\nseg6.m4s\n"), "{pl}");
        assert!(
            pl.contains(
                "#EXT-X-PART:DURATION=0.320,URI=\"part7.0.m4s\",INDEPENDENT=YES\n\
                 #EXTINF:0.320,\nseg7.m4s\n"
            ),
            "{pl}"
        );
        // from then on every recent segment lists its parts, the first GOP's too: hls.js
        // loads parts only once the part list reaches behind the segment it loads
        assert_eq!(pl.matches("#EXT-X-PART:").count(), 7 + 1 + 3, "{pl}");
        assert!(
            pl.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.3.m4s\""),
            "{pl}"
        );
        assert!(
            pl.contains("#EXT-X-START:TIME-OFFSET=2.000,PRECISE=YES\n"),
            "{pl}"
        );
        // a slower frame rate does not move the part target
        feed(&h, 88, 124, 50, 0);
        for i in 0..40 {
            h.push(Event::Frame(Frame {
                kind: TrackKind::Video,
                pts: 212 * 3600 + i * 9000,
                keyframe: i % 20 == 0,
                data: Bytes::from(vec![1; 100]),
                arrived: Instant::now(),
                wall: Utc::now(),
            }));
        }
        let pl = h.playlist(None, None, "").await.unwrap();
        assert_eq!(target(&pl), first);
        // the rest of the second GOP ends at the third key frame
        assert!(
            pl.contains("#EXTINF:1.680,\nseg8.m4s\n") && pl.contains("#EXTINF:2.000,\nseg9.m4s\n"),
            "{pl}"
        );
        assert!(pl.contains("#EXT-X-START:"), "{pl}");
        // once the segments that begin between key frames have left the window, players
        // choose their start themselves
        feed(&h, 252, 250, 25, 212 * 3600 + 40 * 9000 - 252 * 3600);
        let pl = h.playlist(None, None, "").await.unwrap();
        assert!(
            !pl.contains("seg8.m4s") && !pl.contains("#EXT-X-START"),
            "{pl}"
        );
        // plain HLS keeps whole GOP-long segments from the start
        let plain = Hls::new(HlsConfig {
            low_latency: false,
            ..HlsConfig::default()
        });
        plain.push(Event::Start(tracks(1)));
        feed(&plain, 0, 13, 50, 0);
        assert!(!plain.ready());
    }

    #[tokio::test]
    async fn long_gops_make_long_segments_and_the_window_is_bounded() {
        let h = Hls::new(HlsConfig::default());
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 1500, 100, 0); // 4 s GOP, 60 s
        let pl = h.playlist(None, None, "").await.unwrap();
        assert!(pl.contains("#EXT-X-TARGETDURATION:4\n"), "{pl}");
        assert!(pl.contains("#EXTINF:4.000,"), "{pl}");
        let segs = pl.matches("#EXTINF").count();
        assert!((3..=6).contains(&segs), "window of {segs} segments:\n{pl}");
        assert!(
            h.file("seg0.m4s").await.is_err(),
            "old segments leave the window"
        );
    }

    #[tokio::test]
    async fn segment_buffers_go_round_once_segments_leave_the_window() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(16 << 20)));
        let h = Hls::with_pool(HlsConfig::default(), pool);
        h.push(Event::Start(tracks(1)));
        // 2 Mbit/s-like frames (10 kB), 2 s GOP: 10 s, then 60 s more
        feed_sized(&h, 0, 250, 50, 0, 10_000);
        let (_, warm) = pool.counts();
        feed_sized(&h, 250, 1500, 50, 0, 10_000);
        let (reused, allocated) = pool.counts();
        // 30 segments left the window meanwhile: their buffers served the next ones
        assert!(reused >= 25, "reused {reused}, allocated {allocated}");
        assert!(
            allocated - warm <= 2,
            "reused {reused}, allocated {allocated} ({warm} warm)"
        );
        // and the window still reads back what went in
        let pl = h.playlist(None, None, "").await.unwrap();
        let last = pl
            .lines()
            .rfind(|l| l.starts_with("seg"))
            .unwrap()
            .to_string();
        let seg = h.file(&last).await.unwrap();
        assert!(seg.chunks.iter().map(Bytes::len).sum::<usize>() > 400_000);
    }

    #[tokio::test]
    async fn new_init_and_timestamp_jumps_are_discontinuities() {
        let h = Hls::new(HlsConfig::default());
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 100, 25, 0);
        h.push(Event::Start(tracks(2)));
        feed(&h, 0, 100, 25, 9_000_000);
        let pl = h.playlist(None, None, "").await.unwrap();
        assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{pl}");
        assert!(
            pl.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\""),
            "{pl}"
        );
        // timestamps go back to 0 mid-stream (camera reboot): a discontinuity, same init
        feed(&h, 0, 100, 25, 0);
        let pl = h.playlist(None, None, "").await.unwrap();
        assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{pl}");
    }

    #[tokio::test]
    async fn blocking_reload_waits_for_the_part_and_refuses_far_ahead() {
        let h = Arc::new(Hls::new(HlsConfig::default()));
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 60, 25, 0);
        assert!(h.ready());
        let next = h.lock().next_msn;
        let e = h.playlist(Some(next + 5), None, "").await.unwrap_err();
        assert!(matches!(e, crate::media::error::Error::Invalid(_)), "{e}");
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.playlist(Some(next), Some(1), "").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "blocks until the part exists");
        feed(&h, 60, 60, 25, 0);
        let pl = waiter.await.unwrap().unwrap();
        assert!(pl.contains(&format!("part{next}.1.m4s")), "{pl}");
    }

    #[tokio::test]
    async fn a_stream_without_key_frames_cannot_grow_the_window_without_bound() {
        let h = Hls::new(HlsConfig::default());
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 25 * 300, 1_000_000, 0); // 300 s, one key frame at the start
        let pl = h.playlist(None, None, "").await.unwrap();
        assert!(pl.contains("#EXTINF:20.000,"), "{pl}");
        // three target durations (60 s) plus the segment being built, not 300 s
        assert!(
            h.bytes() < 100 * 25 * 100 * 2,
            "window bounded: {} bytes",
            h.bytes()
        );
    }

    #[test]
    fn file_names_are_decoded_once() {
        use FileName::*;
        for (name, want) in [
            ("init-0.mp4", Some(Init(0))),
            ("seg12.m4s", Some(Segment(12))),
            ("part12.3.m4s", Some(Part(12, 3))),
            ("part12.m4s", None),
            ("seg.m4s", None),
            ("seg-1.m4s", None),
            ("seg1.mp4", None),
            ("init-1.m4s", None),
            ("part1.2.3.m4s", None),
            ("seg99999999999999999999.m4s", None),
            ("index.m3u8", None),
            ("", None),
        ] {
            assert_eq!(FileName::parse(name), want, "{name}");
        }
    }

    #[tokio::test]
    async fn plain_hls_has_no_parts() {
        let h = Hls::new(HlsConfig {
            low_latency: false,
            ..Default::default()
        });
        h.push(Event::Start(tracks(1)));
        feed(&h, 0, 200, 25, 0);
        let pl = h.playlist(Some(1), Some(0), "").await.unwrap();
        assert!(pl.contains("#EXT-X-VERSION:7"));
        assert!(
            !pl.contains("EXT-X-PART") && !pl.contains("PRELOAD") && !pl.contains("SERVER-CONTROL"),
            "{pl}"
        );
        assert!(h.file("part1.0.m4s").await.is_err());
    }

    #[tokio::test]
    async fn frames_before_the_first_key_frame_are_dropped() {
        let h = Hls::new(HlsConfig::default());
        h.push(Event::Start(tracks(1)));
        feed(&h, 5, 120, 25, 0); // starts mid-GOP
        let pl = h.playlist(None, None, "").await.unwrap();
        let first_part = pl.lines().find(|l| l.starts_with("#EXT-X-PART:")).unwrap();
        assert!(first_part.ends_with("INDEPENDENT=YES"), "{pl}");
    }
}
