//! What flows from a camera session to its consumers: a `Start` (new init: first connect,
//! reconnect or new parameters) then frames. Frames are cheap to clone (`Bytes`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::fmp4::{TrackInfo, TrackKind};

/// The tracks of one session generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracks {
    /// Increases with every new init (reconnect, parameter change).
    pub generation: u64,
    pub video: TrackInfo,
    pub audio: Option<TrackInfo>,
}

impl Tracks {
    /// Track infos in init-segment order (video is track 1, audio track 2).
    pub fn infos(&self) -> Vec<TrackInfo> {
        let mut v = vec![self.video.clone()];
        v.extend(self.audio.clone());
        v
    }
}

/// One video access unit or audio frame, as the camera sent it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: TrackKind,
    /// Presentation time in the track's timescale, from the RTP timestamps.
    pub pts: i64,
    /// A random access point (always true for audio).
    pub keyframe: bool,
    /// H.264/H.265: 4-byte length-prefixed NAL units; AAC: one raw access unit.
    pub data: Bytes,
    /// When the last packet of it arrived.
    pub arrived: Instant,
    /// Wall-clock time of arrival, for `EXT-X-PROGRAM-DATE-TIME` and recording names.
    pub wall: chrono::DateTime<chrono::Utc>,
}

/// An item of the fan-out.
#[derive(Debug, Clone)]
pub enum Event {
    Start(Arc<Tracks>),
    Frame(Frame),
}

/// Test material: the tracks of an H.264 camera (the sample entry is a stub; the muxer and
/// the writers copy it as they get it).
#[cfg(test)]
pub fn test_tracks(generation: u64, width: u32, height: u32) -> Arc<Tracks> {
    Arc::new(Tracks {
        generation,
        video: TrackInfo {
            kind: TrackKind::Video,
            timescale: 90_000,
            sample_entry: Bytes::from_static(b"\0\0\0\x08avc1"),
            width,
            height,
            codec: "avc1.42c01e".into(),
        },
        audio: None,
    })
}
