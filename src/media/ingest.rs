//! RTSP ingest: one retina session per camera, and the supervisor that keeps it up while
//! anyone needs it.
//!
//! DESCRIBE → SETUP video (H.264/H.265) and AAC audio when offered → PLAY → demuxed frames in
//! `FrameFormat::MP4` (length-prefixed NAL units, parameter sets only in the sample entry).
//! Each connect and each change of parameters publishes a new `Start` (new init segment).
//!
//! Retries are paced by how long the camera has been *out* ([`Backoff`]), not by how many
//! sessions it has had: a session that delivered video ends an outage, so a camera that
//! reboots every few minutes comes back within about a second each time, while one that
//! never answers is asked less and less often (¼ of its outage, 1 s → 30 s, jittered). A 401
//! waits much longer (wrong credentials must not lock the camera's account). No video for
//! max(5 s, 2 GOPs) is a stall ([`stall_after`]), also right after PLAY. On stop the session
//! is dropped, and retina sends TEARDOWN. Errors never carry credentials: they go to retina
//! separately, never in the URL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport as RtpTransport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::fanout::Fanout;
use super::fmp4::{TrackInfo, TrackKind};
use super::frame::{Event, Frame, Tracks};
use crate::store::Transport;

/// No video for this long, before the camera's GOP is known, is a stall.
pub const STALL_MIN: Duration = Duration::from_secs(5);
/// However long the GOP, no video for this long is a stall.
pub const STALL_MAX: Duration = Duration::from_secs(20);
/// Longest wait for DESCRIBE/SETUP/PLAY answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A camera session's state, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Idle,
    Connecting {
        attempt: u32,
    },
    Live {
        since: chrono::DateTime<chrono::Utc>,
        video: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Retrying {
        attempt: u32,
        last_error: String,
        retry_in_sec: u64,
    },
    Unauthorized {
        attempt: u32,
        last_error: String,
        retry_in_sec: u64,
    },
    Unsupported {
        reason: String,
        retry_in_sec: u64,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Live { .. } => "live",
            State::Retrying { .. } => "retrying",
            State::Unauthorized { .. } => "unauthorized",
            State::Unsupported { .. } => "unsupported",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Source {
    pub camera: String,
    /// The URL without credentials (XMEye keeps its path ones: the camera wants them there).
    pub url: String,
    pub credentials: Option<(String, String)>,
    pub transport: Transport,
}

impl Source {
    /// The source of a registered camera: its sealed URL opened, credentials split off.
    pub fn of(
        sealer: &crate::camera::seal::Sealer,
        cam: &crate::store::Camera,
    ) -> super::error::Result<Source> {
        let url = sealer.open(&cam.id, &cam.rtsp_url_sealed)?;
        let (bare, credentials) = crate::camera::url::split_credentials(&url).ok_or_else(|| {
            super::error::Error::Camera(crate::error::Error::internal(format!(
                "camera {} has an unusable RTSP URL",
                cam.id
            )))
        })?;
        Ok(Source {
            camera: cam.id.clone(),
            url: bare,
            credentials,
            transport: cam.transport,
        })
    }

    /// A message with every credential replaced by `***`.
    fn scrub(&self, msg: String) -> String {
        let mut m = msg;
        if let Some((_, p)) = &self.credentials {
            if p.len() >= 3 {
                m = m.replace(p.as_str(), "***");
            }
        }
        m
    }
}

enum Failure {
    Unauthorized(String),
    Unsupported(String),
    Other(String),
}

fn classify(e: retina::Error) -> Failure {
    // retina's message is several lines (the error, then connection details): keep the first
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if e.status_code() == Some(401) {
        Failure::Unauthorized(first)
    } else {
        Failure::Other(first)
    }
}

fn video_info(p: &retina::codec::VideoParameters) -> Result<TrackInfo, Failure> {
    let entry = p
        .mp4_sample_entry()
        .build()
        .map_err(|e| Failure::Unsupported(format!("video cannot go into MP4: {e}")))?;
    let (width, height) = p.pixel_dimensions();
    Ok(TrackInfo {
        kind: TrackKind::Video,
        timescale: 90_000,
        sample_entry: Bytes::from(entry),
        width,
        height,
        codec: p.rfc6381_codec().to_string(),
    })
}

fn audio_info(p: &retina::codec::AudioParameters) -> Option<TrackInfo> {
    let entry = p.mp4_sample_entry().build().ok()?;
    Some(TrackInfo {
        kind: TrackKind::Audio,
        timescale: p.clock_rate(),
        sample_entry: Bytes::from(entry),
        width: 0,
        height: 0,
        codec: p.rfc6381_codec().unwrap_or("mp4a.40.2").to_string(),
    })
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(Failure::Other(format!(
            "{what}: no answer within {} s",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// A camera session after PLAY: its frames, and where its tracks are.
struct Playing {
    demuxed: retina::client::Demuxed,
    video_i: usize,
    audio_i: Option<usize>,
    /// Said in the camera's state: e.g. an audio codec that is not carried.
    note: Option<String>,
    h265: bool,
}

/// DESCRIBE, SETUP of the video (H.264 or H.265) and of AAC audio if offered, PLAY.
async fn connect(src: &Source) -> Result<Playing, Failure> {
    let url = url::Url::parse(&src.url)
        .map_err(|e| Failure::Unsupported(format!("bad RTSP URL: {e}")))?;
    let creds = src
        .credentials
        .clone()
        .map(|(username, password)| Credentials { username, password });
    let opts = SessionOptions::default()
        .creds(creds)
        .session_group(group())
        .user_agent(format!("vigia/{}", env!("CARGO_PKG_VERSION")));
    let mut s = timed("DESCRIBE", Session::describe(url, opts)).await?;
    let offered: Vec<String> = s
        .streams()
        .iter()
        .map(|st| format!("{}/{}", st.media(), st.encoding_name()))
        .collect();
    let video_i = s
        .streams()
        .iter()
        .position(|st| st.media() == "video" && matches!(st.encoding_name(), "h264" | "h265"))
        .ok_or_else(|| {
            Failure::Unsupported(format!(
                "no H.264 or H.265 video (the camera offers {})",
                offered.join(", ")
            ))
        })?;
    let audio_i = s
        .streams()
        .iter()
        .position(|st| st.media() == "audio" && st.encoding_name() == "mpeg4-generic");
    let note = match (audio_i, s.streams().iter().find(|st| st.media() == "audio")) {
        (None, Some(a)) => Some(format!(
            "audio {} is not carried (only AAC is)",
            a.encoding_name()
        )),
        _ => None,
    };
    let transport = match src.transport {
        Transport::Tcp => RtpTransport::Tcp(TcpTransportOptions::default()),
        Transport::Udp => RtpTransport::Udp(UdpTransportOptions::default()),
    };
    let setup = || {
        SetupOptions::default()
            .transport(transport.clone())
            .frame_format(FrameFormat::MP4)
    };
    timed("SETUP", s.setup(video_i, setup())).await?;
    if let Some(a) = audio_i {
        timed("SETUP", s.setup(a, setup())).await?;
    }
    // many cameras leave rtptime out of RTP-Info: start each stream's timeline at its first
    // packet rather than refuse them
    let play = PlayOptions::default()
        .initial_timestamp(retina::client::InitialTimestampPolicy::Permissive);
    let playing = timed("PLAY", s.play(play)).await?;
    let h265 = playing.streams()[video_i].encoding_name() == "h265";
    Ok(Playing {
        demuxed: playing.demuxed().map_err(classify)?,
        video_i,
        audio_i,
        note,
        h265,
    })
}

/// The session's tracks, first or changed: the camera's state says `live` with them, and the
/// consumers get a `Start` of a new generation. `false` while the video has no parameters yet.
fn announce(
    src: &Source,
    p: &Playing,
    fanout: &Fanout,
    state: &Mutex<State>,
    generation: &mut u64,
    first: bool,
) -> Result<bool, Failure> {
    let streams = p.demuxed.streams();
    let Some(ParametersRef::Video(vp)) = streams[p.video_i].parameters() else {
        return Ok(false);
    };
    let video = video_info(vp)?;
    let audio = p.audio_i.and_then(|a| match streams[a].parameters() {
        Some(ParametersRef::Audio(ap)) => audio_info(ap),
        _ => None,
    });
    *generation += 1;
    let label = |t: &TrackInfo| {
        if t.kind == TrackKind::Video {
            format!("{} {}x{}", t.codec, t.width, t.height)
        } else {
            t.codec.clone()
        }
    };
    if first {
        info!(camera = %src.camera, video = %label(&video), "live");
    } else {
        info!(camera = %src.camera, video = %label(&video), "new video parameters");
    }
    *state.lock().unwrap_or_else(|p| p.into_inner()) = State::Live {
        since: chrono::Utc::now(),
        video: label(&video),
        audio: audio.as_ref().map(label),
        note: p.note.clone(),
    };
    fanout.publish(Event::Start(Arc::new(Tracks {
        generation: *generation,
        video,
        audio,
    })));
    Ok(true)
}

/// One session from DESCRIBE to its end. `Ok` when told to stop.
async fn session(
    src: &Source,
    fanout: &Fanout,
    state: &Mutex<State>,
    generation: &mut u64,
    stop: &mut watch::Receiver<bool>,
    live: &mut bool,
) -> Result<(), Failure> {
    let mut p = connect(src).await?;
    let mut started = false;
    let mut gop = Gop::default();
    let mut last_video = tokio::time::Instant::now();
    // one timer and one stop signal for the session, not one of each per frame: the timer is
    // moved on only when it fires (to the last video frame + the stall limit)
    let stall = tokio::time::sleep_until(last_video + stall_after(gop.length()));
    let stopped = stop.changed();
    tokio::pin!(stall, stopped);
    loop {
        // the camera's next item first: while items keep coming, the stop signal and the timer
        // are not polled at all (the socket runs dry, or tokio's budget ends the run, often
        // enough for both to be seen)
        let item = tokio::select! {
            biased;
            r = p.demuxed.next() => r,
            _ = &mut stopped => return Ok(()),
            _ = &mut stall => {
                let limit = stall_after(gop.length());
                if last_video + limit > tokio::time::Instant::now() {
                    // video came since the timer was set: wait from the last frame
                    stall.as_mut().reset(last_video + limit);
                    continue;
                }
                return Err(Failure::Other(format!(
                    "stalled: no video for {:.1} s",
                    limit.as_secs_f64()
                )));
            }
        };
        let item = match item {
            None => return Err(Failure::Other("the camera ended the session".into())),
            Some(Err(e)) => return Err(classify(e)),
            Some(Ok(i)) => i,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                last_video = tokio::time::Instant::now();
                if !started || f.has_new_parameters() {
                    if !announce(src, &p, fanout, state, generation, !started)? {
                        continue;
                    }
                    started = true;
                    *live = true;
                }
                let pts = f.timestamp().timestamp();
                // retina counts only IDR pictures as random access points; most H.265 cameras
                // (and x265's default open GOP) send CRA pictures at every GOP after the first
                let keyframe = f.is_random_access_point() || (p.h265 && h265_irap(f.data()));
                if keyframe {
                    gop.key(last_video);
                    // the limit follows the GOP: a shorter one may bring the deadline closer
                    stall.as_mut().reset(last_video + stall_after(gop.length()));
                }
                tracing::trace!(camera = %src.camera, pts, keyframe, bytes = f.data().len(), "video frame");
                fanout.publish(Event::Frame(Frame {
                    kind: TrackKind::Video,
                    pts,
                    keyframe,
                    data: Bytes::from(f.into_data()),
                    arrived: last_video.into_std(),
                    wall: chrono::Utc::now(),
                }));
            }
            CodecItem::AudioFrame(f) if started => {
                fanout.publish(Event::Frame(Frame {
                    kind: TrackKind::Audio,
                    pts: f.timestamp().timestamp(),
                    keyframe: true,
                    data: Bytes::copy_from_slice(f.data()),
                    arrived: Instant::now(),
                    wall: chrono::Utc::now(),
                }));
            }
            _ => {}
        }
    }
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) holds an IRAP picture:
/// BLA, IDR or CRA, `nal_unit_type` 16..=23 (ITU-T H.265 §7.4.2.2, table 7-1). A decoder may
/// start there; RASL pictures that follow a CRA are skipped by decoders that start at it.
pub fn h265_irap(mut au: &[u8]) -> bool {
    while au.len() >= 6 {
        let len = u32::from_be_bytes([au[0], au[1], au[2], au[3]]) as usize;
        let kind = (au[4] >> 1) & 0x3f;
        if (16..=23).contains(&kind) {
            return true;
        }
        au = au.get(4 + len..).unwrap_or_default();
    }
    false
}

/// The camera's GOP, from the arrival of its last two key frames.
#[derive(Debug, Default, Clone, Copy)]
struct Gop {
    last_key: Option<tokio::time::Instant>,
    length: Option<Duration>,
}

impl Gop {
    fn key(&mut self, at: tokio::time::Instant) {
        if let Some(prev) = self.last_key {
            self.length = Some(at - prev);
        }
        self.last_key = Some(at);
    }

    fn length(&self) -> Option<Duration> {
        self.length
    }
}

/// How long without video is a stall: max(5 s, 2 GOPs), at most 20 s.
pub fn stall_after(gop: Option<Duration>) -> Duration {
    gop.map_or(STALL_MIN, |g| (g * 2).clamp(STALL_MIN, STALL_MAX))
}

/// Paces the retries of one camera. An *outage* begins when a session that delivered video
/// ends (or when the supervisor starts); each retry waits a quarter of the outage so far,
/// between 1 s and 30 s, ±20 %. A camera back after a 2 s reboot is asked again within about
/// a second of coming back; one away for an hour is asked every 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    outage_since: Instant,
    /// Failed sessions in a row since the outage began.
    pub failures: u32,
}

impl Backoff {
    pub fn new(now: Instant) -> Backoff {
        Backoff {
            outage_since: now,
            failures: 0,
        }
    }

    /// A session ended at `now`; `went_live`: it delivered video. Returns the base delay
    /// (before jitter) until the next attempt.
    pub fn failed(&mut self, now: Instant, went_live: bool) -> Duration {
        if went_live {
            self.outage_since = now;
            self.failures = 0;
        }
        self.failures += 1;
        (now.saturating_duration_since(self.outage_since) / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// ±20 % jitter, so cameras on one switch that went down together do not come back in step.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + 0.4 * rand::random::<f64>())
}

/// Keeps the camera's session up until `stop` turns true.
/// Every camera session of the process, so that shutdown can wait for their `TEARDOWN`s.
pub fn group() -> Arc<retina::client::SessionGroup> {
    static GROUP: std::sync::OnceLock<Arc<retina::client::SessionGroup>> =
        std::sync::OnceLock::new();
    GROUP
        .get_or_init(|| Arc::new(retina::client::SessionGroup::default().named("vigia".into())))
        .clone()
}

pub async fn supervise(
    src: Source,
    fanout: Arc<Fanout>,
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
    sessions: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut backoff = Backoff::new(Instant::now());
    let mut generation = 0u64;
    let set = |s: State| *state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    loop {
        if *stop.borrow() {
            break;
        }
        set(State::Connecting {
            attempt: backoff.failures,
        });
        sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut live = false;
        let r = session(&src, &fanout, &state, &mut generation, &mut stop, &mut live).await;
        if *stop.borrow() || r.is_ok() {
            break;
        }
        let base = backoff.failed(Instant::now(), live);
        let attempt = backoff.failures;
        let (delay, next) = match r {
            Err(Failure::Unauthorized(e)) => {
                let d = Duration::from_secs((60 * u64::from(attempt)).min(600));
                let e = src.scrub(e);
                (
                    d,
                    State::Unauthorized {
                        attempt,
                        last_error: e,
                        retry_in_sec: d.as_secs(),
                    },
                )
            }
            Err(Failure::Unsupported(e)) => {
                let d = Duration::from_secs(300);
                (
                    d,
                    State::Unsupported {
                        reason: src.scrub(e),
                        retry_in_sec: d.as_secs(),
                    },
                )
            }
            Err(Failure::Other(e)) => {
                let d = jitter(base);
                (
                    d,
                    State::Retrying {
                        attempt,
                        last_error: src.scrub(e),
                        retry_in_sec: d.as_secs().max(1),
                    },
                )
            }
            Ok(()) => unreachable!("handled above"),
        };
        warn!(camera = %src.camera, state = next.name(), retry_in_ms = delay.as_millis() as u64, "session ended: {}", match &next {
            State::Retrying { last_error, .. } | State::Unauthorized { last_error, .. } => last_error.as_str(),
            State::Unsupported { reason, .. } => reason.as_str(),
            _ => "",
        });
        set(next);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
    set(State::Idle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_after_live_video_starts_again_at_the_first_step() {
        let t0 = Instant::now();
        let mut b = Backoff::new(t0);
        let s = |x: f64| Duration::from_secs_f64(x);
        // a camera that never comes up: 1 s steps at first, then a quarter of the outage
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..40 {
            let d = b.failed(t, false);
            waits.push(d);
            t += d;
        }
        assert_eq!(waits[..4], [s(1.0); 4]);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), s(30.0), "capped at 30 s");
        assert_eq!(b.failures, 40);
        // then it delivers video for a while and drops: the first retry is 1 s again
        t += s(600.0);
        assert_eq!(b.failed(t, true), s(1.0));
        assert_eq!(b.failures, 1);
        // a 2 s reboot: every retry within it stays at 1 s
        assert_eq!(b.failed(t + s(1.0), false), s(1.0));
        assert_eq!(b.failed(t + s(2.0), false), s(1.0));
        // a camera that reboots every 10 s, delivering video in between, never waits longer
        for i in 1..=20 {
            assert_eq!(b.failed(t + s(10.0 * f64::from(i)), true), s(1.0));
        }
        let j = jitter(s(10.0));
        assert!((s(8.0)..=s(12.0)).contains(&j), "{j:?}");
    }

    #[test]
    fn a_stall_is_two_gops_at_least_five_seconds() {
        let s = Duration::from_secs_f64;
        assert_eq!(
            stall_after(None),
            s(5.0),
            "no GOP known yet (e.g. nothing after PLAY)"
        );
        assert_eq!(stall_after(Some(s(1.0))), s(5.0));
        assert_eq!(stall_after(Some(s(4.0))), s(8.0));
        assert_eq!(stall_after(Some(s(60.0))), s(20.0));
        let t = tokio::time::Instant::now();
        let mut g = Gop::default();
        g.key(t);
        assert_eq!(g.length(), None);
        g.key(t + s(2.0));
        g.key(t + s(5.0));
        assert_eq!(g.length(), Some(s(3.0)), "the last GOP counts");
    }

    #[test]
    fn h265_cra_idr_and_bla_are_random_access_but_trailing_pictures_are_not() {
        // one AU: length-prefixed NAL units; the header's type is bits 1..=6 of its first byte
        let au = |types: &[u8]| {
            let mut v = Vec::new();
            for t in types {
                v.extend_from_slice(&3u32.to_be_bytes());
                v.extend_from_slice(&[t << 1, 1, 0xaf]);
            }
            v
        };
        for irap in [16, 19, 20, 21, 23] {
            assert!(h265_irap(&au(&[35, 39, irap])), "type {irap}");
        }
        for not in [0, 1, 9, 24, 32, 33, 34, 35, 39] {
            assert!(!h265_irap(&au(&[not, 1])), "type {not}");
        }
        assert!(!h265_irap(&[]));
        assert!(!h265_irap(&[0, 0, 0, 200, 0x2a]), "a length past the end");
        let mut torn = au(&[1]);
        torn.extend_from_slice(&[0, 0, 0, 99, 21 << 1]);
        assert!(!h265_irap(&torn), "a NAL header cut short is not read");
    }
}
