//! RTSP ingest: one retina session per camera, and the supervisor that keeps it up while
//! anyone needs it.
//!
//! DESCRIBE → SETUP video (H.264/H.265) and AAC audio when offered → PLAY → demuxed frames in
//! `FrameFormat::MP4` (length-prefixed NAL units, parameter sets only in the sample entry).
//! Each connect and each change of parameters publishes a new `Start` (new init segment).
//! Retries back off exponentially with jitter (1 s → 30 s); a 401 waits much longer (wrong
//! credentials must not lock the camera's account); no frame for [`STALL`] is a stall. On
//! stop the session is dropped, and retina sends TEARDOWN. Errors never carry credentials:
//! they go to retina separately, never in the URL.

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

/// No frame for this long: reconnect.
pub const STALL: Duration = Duration::from_secs(10);
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
    ) -> crate::error::Result<Source> {
        let url = sealer.open(&cam.id, &cam.rtsp_url_sealed)?;
        let (bare, credentials) = crate::camera::url::split_credentials(&url).ok_or_else(|| {
            crate::error::Error::internal(format!("camera {} has an unusable RTSP URL", cam.id))
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

/// One session from DESCRIBE to its end. `Ok` when told to stop.
async fn session(
    src: &Source,
    fanout: &Fanout,
    state: &Mutex<State>,
    generation: &mut u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Failure> {
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
    let mut d = playing.demuxed().map_err(classify)?;
    let mut started = false;
    loop {
        let item = tokio::select! {
            _ = stop.changed() => return Ok(()),
            r = tokio::time::timeout(STALL, d.next()) => r,
        };
        let item = match item {
            Err(_) => {
                return Err(Failure::Other(format!(
                    "stalled: no frame for {} s",
                    STALL.as_secs()
                )))
            }
            Ok(None) => return Err(Failure::Other("the camera ended the session".into())),
            Ok(Some(Err(e))) => return Err(classify(e)),
            Ok(Some(Ok(i))) => i,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                if !started || f.has_new_parameters() {
                    let Some(ParametersRef::Video(vp)) = d.streams()[video_i].parameters() else {
                        continue;
                    };
                    let video = video_info(vp)?;
                    let audio = audio_i.and_then(|a| match d.streams()[a].parameters() {
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
                    let new_state = State::Live {
                        since: chrono::Utc::now(),
                        video: label(&video),
                        audio: audio.as_ref().map(label),
                        note: note.clone(),
                    };
                    if !started {
                        info!(camera = %src.camera, video = %label(&video), "live");
                    } else {
                        info!(camera = %src.camera, video = %label(&video), "new video parameters");
                    }
                    *state.lock().unwrap_or_else(|p| p.into_inner()) = new_state;
                    fanout.publish(Event::Start(Arc::new(Tracks {
                        generation: *generation,
                        video,
                        audio,
                    })));
                    started = true;
                }
                let pts = f.timestamp().timestamp();
                let keyframe = f.is_random_access_point();
                tracing::trace!(camera = %src.camera, pts, keyframe, bytes = f.data().len(), "video frame");
                fanout.publish(Event::Frame(Frame {
                    kind: TrackKind::Video,
                    pts,
                    keyframe,
                    data: Bytes::from(f.into_data()),
                    arrived: Instant::now(),
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

/// Back-off before attempt `attempt + 1`: 1 s, 2 s, 4 s … 30 s, ±20 % jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = 2f64.powi(attempt.saturating_sub(1).min(5) as i32).min(30.0);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    Duration::from_secs_f64(base * jitter)
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
    let mut attempt = 0u32;
    let mut generation = 0u64;
    let set = |s: State| *state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    loop {
        if *stop.borrow() {
            break;
        }
        set(State::Connecting { attempt });
        sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let began = Instant::now();
        let r = session(&src, &fanout, &state, &mut generation, &mut stop).await;
        if *stop.borrow() || r.is_ok() {
            break;
        }
        if began.elapsed() > Duration::from_secs(30) {
            attempt = 0;
        }
        attempt += 1;
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
                let d = backoff(attempt);
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
