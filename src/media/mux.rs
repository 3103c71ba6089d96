//! From frames to fMP4 fragments: sample durations from RTP timestamp deltas, one decode
//! timeline per track, fragments cut whenever the caller asks.
//!
//! A sample's duration is the distance to the next frame of its track. To publish a part the
//! moment its last frame arrives (not one frame later), [`Muxer::complete_pending`] lets the
//! frames still waiting for their successor go out with the previous duration as an
//! estimate; the error, known when the next frame comes, is carried into that frame's
//! duration, so the timeline never drifts from the camera's clock. A delta that is not
//! positive or is over [`MAX_GAP_SECS`] (a camera reboot, a re-seeked test server) does not
//! break the timeline: the sample gets the previous duration and the caller is told, to mark
//! a discontinuity. Each track's decode time starts at 0 with the muxer (a new muxer per init
//! segment). B-frames are not expected from IP cameras and are not reordered.

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
    /// The last frame went out with an estimated duration: its pts and the estimate.
    estimated: Option<(i64, u32)>,
    /// Ticks the next sample's duration must absorb (an estimate's error).
    carry: i64,
}

impl Lane {
    fn new(timescale: u32, nominal: u32) -> Lane {
        Lane {
            timescale,
            pending: None,
            done: Vec::new(),
            base: 0,
            last_duration: nominal,
            estimated: None,
            carry: 0,
        }
    }

    fn done_ticks(&self) -> u64 {
        self.done.iter().map(|s| u64::from(s.duration)).sum()
    }

    fn is_jump(&self, delta: i64) -> bool {
        delta <= 0
            || delta > MAX_GAP_SECS * i64::from(self.timescale)
            || delta > i64::from(u32::MAX)
    }

    /// Makes `p` a sample of `duration` ticks. A sample lasts at least a millisecond (a
    /// camera sending near-equal timestamps would otherwise make samples players collapse);
    /// what it borrows is taken back from the next one, so the timeline stays on time.
    fn complete(&mut self, p: Frame, duration: i64) {
        let min = i64::from((self.timescale / 1000).max(1));
        let d = duration.clamp(min, i64::from(u32::MAX));
        self.carry += duration - d;
        let duration = d as u32;
        let sync = p.keyframe || p.kind == TrackKind::Audio;
        self.done.push(Sample {
            duration,
            sync,
            data: p.data,
        });
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
            let duration = if lane.is_jump(delta) {
                out.jump = true;
                lane.carry = 0;
                i64::from(lane.last_duration)
            } else {
                lane.last_duration = delta as u32;
                delta + std::mem::take(&mut lane.carry)
            };
            lane.complete(p, duration);
        } else if let Some((pts, estimate)) = lane.estimated.take() {
            // the previous frame went out with an estimate: carry the error forward
            let delta = f.pts - pts;
            if lane.is_jump(delta) {
                out.jump = true;
                lane.carry = 0;
            } else {
                lane.last_duration = delta as u32;
                lane.carry = delta - i64::from(estimate);
            }
        }
        lane.pending = Some(f);
        out
    }

    /// Completes every waiting frame with its track's previous duration as an estimate.
    pub fn complete_pending(&mut self) {
        self.complete_lanes(0);
    }

    /// Completes the waiting audio frame only (at a segment cut the video key frame must wait
    /// for the next segment, but the audio received so far belongs to this one: without it
    /// the audio would end before the video and players would stall at the boundary).
    pub fn complete_pending_audio(&mut self) {
        self.complete_lanes(1);
    }

    fn complete_lanes(&mut self, from: usize) {
        for l in self.lanes.iter_mut().skip(from) {
            if let Some(p) = l.pending.take() {
                let estimate = l.last_duration;
                l.estimated = Some((p.pts, estimate));
                let d = i64::from(estimate) + std::mem::take(&mut l.carry);
                l.complete(p, d);
            }
        }
    }

    /// Seconds of video a flush after [`Muxer::complete_pending`] would hold.
    pub fn video_buffered(&self) -> f64 {
        let l = &self.lanes[0];
        let pending = if l.pending.is_some() {
            u64::from(l.last_duration)
        } else {
            0
        };
        (l.done_ticks() + pending) as f64 / f64::from(l.timescale)
    }

    /// The last video frame interval, seconds (the nominal 1/25 s before two frames came).
    pub fn video_frame_secs(&self) -> f64 {
        let l = &self.lanes[0];
        f64::from(l.last_duration) / f64::from(l.timescale)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::TrackInfo;
    use bytes::Bytes;

    fn muxer() -> Muxer {
        let info = TrackInfo {
            kind: TrackKind::Video,
            timescale: 90_000,
            sample_entry: Bytes::new(),
            width: 1,
            height: 1,
            codec: String::new(),
        };
        Muxer::new(
            Arc::new(Tracks {
                generation: 1,
                video: info,
                audio: None,
            }),
            1,
        )
    }

    fn frame(pts: i64) -> Frame {
        Frame {
            kind: TrackKind::Video,
            pts,
            keyframe: pts == 0,
            data: Bytes::from_static(b"x"),
            arrived: std::time::Instant::now(),
            wall: chrono::Utc::now(),
        }
    }

    #[test]
    fn estimates_are_corrected_so_the_timeline_follows_the_camera() {
        let mut m = muxer();
        // 3600-tick frames, one late frame (4000), flushed early twice
        let mut total = 0u64;
        for pts in [0, 3600, 7200, 10800] {
            m.push(frame(pts));
        }
        m.complete_pending(); // 10800 goes out with the estimate 3600
        total += m.flush().unwrap().duration.mul_add(90_000.0, 0.0).round() as u64;
        for pts in [14800, 18400] {
            m.push(frame(pts)); // 14800 is 4000 after 10800: +400 carried
        }
        m.complete_pending();
        total += (m.flush().unwrap().duration * 90_000.0).round() as u64;
        m.push(frame(22000));
        // everything flushed so far spans 0..22000 on the camera's clock
        assert_eq!(total, 22000);
        assert!(!m.push(frame(25600)).jump);
        assert!(m.push(frame(100)).jump, "backwards is a jump");
    }
}
