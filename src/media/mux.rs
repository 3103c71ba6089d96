//! From frames to fMP4 fragments: sample durations from RTP timestamp deltas, one decode
//! timeline per track, fragments cut whenever the caller asks.
//!
//! A sample's duration is the distance to the next frame of its track, so a frame is held
//! until the next one arrives. A delta that is not positive or is over [`MAX_GAP_SECS`] (a
//! camera reboot, a re-seeked test server) does not break the timeline: the sample gets the
//! previous duration and the caller is told, to mark a discontinuity. Each track's decode
//! time starts at 0 with the muxer (a new muxer per init segment). B-frames are not expected
//! from IP cameras and are not reordered.

use std::sync::Arc;

use super::fmp4::{self, Fragment, Sample, TrackKind, TrackRun};
use super::frame::{Frame, Tracks};

/// A forward jump longer than this is a discontinuity, not a gap.
pub const MAX_GAP_SECS: i64 = 10;

struct Lane {
    timescale: u32,
    pending: Option<Frame>,
    done: Vec<Sample>,
    /// Decode time of `done[0]`.
    base: u64,
    last_duration: u32,
}

impl Lane {
    fn new(timescale: u32, nominal: u32) -> Lane {
        Lane {
            timescale,
            pending: None,
            done: Vec::new(),
            base: 0,
            last_duration: nominal,
        }
    }
    fn done_ticks(&self) -> u64 {
        self.done.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// What [`Muxer::push`] noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    /// The timestamps jumped (backwards, or forward by more than [`MAX_GAP_SECS`]).
    pub jump: bool,
}

/// A fragment with what a playlist needs to know of it.
#[derive(Debug, Clone)]
pub struct Muxed {
    pub fragment: Fragment,
    /// Video duration in seconds.
    pub duration: f64,
    /// Starts with a video key frame.
    pub independent: bool,
}

pub struct Muxer {
    pub tracks: Arc<Tracks>,
    sequence: u32,
    lanes: Vec<Lane>,
}

impl Muxer {
    pub fn new(tracks: Arc<Tracks>, sequence_start: u32) -> Muxer {
        let mut lanes = vec![Lane::new(
            tracks.video.timescale,
            tracks.video.timescale / 25,
        )];
        if let Some(a) = &tracks.audio {
            lanes.push(Lane::new(a.timescale, 1024));
        }
        Muxer {
            tracks,
            sequence: sequence_start,
            lanes,
        }
    }

    fn lane(&mut self, kind: TrackKind) -> Option<&mut Lane> {
        match kind {
            TrackKind::Video => self.lanes.get_mut(0),
            TrackKind::Audio => self.lanes.get_mut(1),
        }
    }

    /// Adds a frame; the previous frame of its track becomes a complete sample.
    pub fn push(&mut self, f: Frame) -> Pushed {
        let mut out = Pushed::default();
        let Some(lane) = self.lane(f.kind) else {
            return out;
        };
        if let Some(p) = lane.pending.take() {
            let delta = f.pts - p.pts;
            let max = MAX_GAP_SECS * i64::from(lane.timescale);
            let duration = if delta <= 0 || delta > max || delta > i64::from(u32::MAX) {
                out.jump = true;
                lane.last_duration
            } else {
                delta as u32
            };
            lane.last_duration = duration;
            lane.done.push(Sample {
                duration,
                sync: p.keyframe || p.kind == TrackKind::Audio,
                data: p.data,
            });
        }
        lane.pending = Some(f);
        out
    }

    /// Seconds of complete video samples not yet in a fragment.
    pub fn video_done(&self) -> f64 {
        let l = &self.lanes[0];
        l.done_ticks() as f64 / f64::from(l.timescale)
    }

    /// Whether complete video samples are waiting.
    pub fn has_video(&self) -> bool {
        !self.lanes[0].done.is_empty()
    }

    /// Moves the complete samples into a `moof`+`mdat`; `None` when there are none.
    pub fn flush(&mut self) -> Option<Muxed> {
        if self.lanes.iter().all(|l| l.done.is_empty()) {
            return None;
        }
        let duration = self.video_done();
        let independent = self.lanes[0].done.first().is_some_and(|s| s.sync);
        let runs: Vec<TrackRun<'_>> = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| TrackRun {
                track_id: i as u32 + 1,
                base_time: l.base,
                samples: &l.done,
            })
            .collect();
        let fragment = fmp4::fragment(self.sequence, &runs);
        self.sequence = self.sequence.wrapping_add(1);
        for l in &mut self.lanes {
            l.base += l.done_ticks();
            l.done.clear();
        }
        Some(Muxed {
            fragment,
            duration,
            independent,
        })
    }

    /// The fragment sequence number the next flush will use.
    pub fn next_sequence(&self) -> u32 {
        self.sequence
    }
}
